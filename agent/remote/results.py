"""Command results to the hub on `<prefix>/<site>/<gateway>/result`.

Results are QoS 1 messages on the live session, not stored readings: while the
gateway is offline they wait in memory (bounded) and go out after the next
connect. A result that must survive a restart of the agent (the outcome of a
config update, a restart command) is written to the data_dir first and sent
after the restart.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import deque
from typing import Any

from agent.remote.statefile import read_json, write_json

MAX_QUEUED = 1000


class Results:
    def __init__(self, uplink: Any, base_topic: str, data_dir: str, log: logging.Logger) -> None:
        self.uplink = uplink
        self.topic = base_topic + "/result"
        self.data_topic = base_topic + "/data"
        self.log = log
        self.pending_path = os.path.join(data_dir, "remote", "pending_results.json")
        self._queue: deque[tuple[str, bytes]] = deque(maxlen=MAX_QUEUED)
        self._wake = asyncio.Event()
        for item in read_json(self.pending_path, []):
            self._queue.append((self.topic, json.dumps(item, separators=(",", ":")).encode()))
        if self._queue:
            os.unlink(self.pending_path)

    @staticmethod
    def message(cmd: str, cid: str | None, state: str, reason: str = "", **data: Any) -> dict[str, Any]:
        msg: dict[str, Any] = {"v": 1, "id": cid, "cmd": cmd, "state": state, "ts": time.time()}
        if reason:
            msg["reason"] = reason
        if data:
            msg["data"] = data
        return msg

    def send(self, cmd: str, cid: str | None, state: str, reason: str = "", **data: Any) -> None:
        self.send_raw(self.topic, json.dumps(self.message(cmd, cid, state, reason, **data), separators=(",", ":"), default=str).encode())

    def send_raw(self, topic: str, payload: bytes) -> None:
        self._queue.append((topic, payload))
        self._wake.set()

    def send_after_restart(self, cmd: str, cid: str | None, state: str, reason: str = "", **data: Any) -> None:
        pending = read_json(self.pending_path, [])
        pending.append(self.message(cmd, cid, state, reason, **data))
        write_json(self.pending_path, pending[-MAX_QUEUED:])

    def queued(self) -> int:
        return len(self._queue)

    async def run(self) -> None:
        while True:
            while self._queue:
                topic, payload = self._queue[0]
                if not self.uplink.publish(topic, payload):
                    break
                self._queue.popleft()
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), 0.5 if self._queue else 30.0)
            except TimeoutError:
                pass

    async def flush(self, timeout: float) -> bool:
        """Wait (bounded) until everything queued went out; True when it did."""
        deadline = time.monotonic() + timeout
        while self._queue and time.monotonic() < deadline:
            self._wake.set()
            await asyncio.sleep(0.05)
        return not self._queue
