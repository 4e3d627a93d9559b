"""Replay protection: a persisted window of the nonces of accepted commands.

A command is fresh when its timestamp is within `max_skew` of the gateway's
clock and its nonce was never accepted before. Nonces are remembered for the
skew window; when the window is pruned or full, the newest forgotten timestamp
becomes a floor and nothing at or below it is accepted, so forgetting a nonce
never re-opens the door to its replay. The file survives restarts, so a
command captured before a restart cannot be replayed after it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from agent.remote.envelope import Refused
from agent.remote.statefile import read_json, write_json


class ReplayWindow:
    def __init__(self, path: str, *, max_skew: float, max_entries: int, now: Callable[[], float] = time.time) -> None:
        self.path = path
        self.max_skew = max_skew
        self.max_entries = max_entries
        self.now = now
        data = read_json(path, {})
        self.floor = float(data.get("floor", 0.0)) if isinstance(data, dict) else 0.0
        seen = data.get("seen", {}) if isinstance(data, dict) else {}
        self.seen: dict[str, float] = {str(k): float(v) for k, v in seen.items()} if isinstance(seen, dict) else {}

    def check_and_remember(self, nonce: str, ts: float) -> None:
        """Raise Refused (expired / replayed), else remember the nonce durably before returning."""
        now = self.now()
        if ts < now - self.max_skew:
            raise Refused(
                "expired",
                f"sent {now - ts:.0f} s ago, more than max_clock_skew {self.max_skew:.0f} s; send a fresh command (and check the hub's and gateway's clocks)",
            )
        if ts > now + self.max_skew:
            raise Refused(
                "expired", f"timestamp is {ts - now:.0f} s in the future, more than max_clock_skew {self.max_skew:.0f} s; check the hub's and gateway's clocks"
            )
        if nonce in self.seen or ts <= self.floor:
            raise Refused(
                "replayed", "this nonce was already used (or the command is older than the remembered window): a replay; send a new command with a new nonce"
            )
        self.seen[nonce] = ts
        self._prune(now)
        write_json(self.path, {"floor": self.floor, "seen": self.seen})

    def _prune(self, now: float) -> None:
        old = [n for n, t in self.seen.items() if t < now - self.max_skew]
        for n in old:
            self.floor = max(self.floor, self.seen.pop(n))
        if len(self.seen) > self.max_entries:
            for n, t in sorted(self.seen.items(), key=lambda kv: kv[1])[: len(self.seen) - self.max_entries]:
                self.floor = max(self.floor, t)
                del self.seen[n]


def replay_path(data_dir: str) -> str:
    return os.path.join(data_dir, "remote", "replay.json")
