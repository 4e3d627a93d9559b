"""The reference hub's SQLite store: dedup by (gateway, seq), gaps, drops, latest status and health.

`seen` holds every sequence number received per gateway (readings and events
share the sequence), which is both the dedup index and what gaps are computed
from. A gap is a run of numbers missing between the lowest and highest seen;
it is *explained* when the gateway reported it: a `dropped` event covering it
(cap overflow) or a `seq_jump` event ending at it (outbox database lost or
moved aside as corrupt).
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from agent.hub.schema import EventsPayload, HealthPayload, ReadingsPayload, StatusPayload

_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen(gateway TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY(gateway, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS readings(
    gateway TEXT NOT NULL, seq INTEGER NOT NULL, site TEXT, device TEXT, metric TEXT, value, unit TEXT, status TEXT,
    detail TEXT, ts REAL, time TEXT, boot TEXT, mono_ns INTEGER, received REAL, PRIMARY KEY(gateway, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events(
    gateway TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT, data TEXT, ts REAL, time TEXT, boot TEXT, received REAL,
    PRIMARY KEY(gateway, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS latest(gateway TEXT NOT NULL, kind TEXT NOT NULL, payload TEXT, received REAL, PRIMARY KEY(gateway, kind)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters(gateway TEXT NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL, PRIMARY KEY(gateway, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS invalid(received REAL, topic TEXT, error TEXT, payload BLOB);
"""

INVALID_KEPT = 1000  # the last this many invalid messages are kept for inspection

F = TypeVar("F", bound=Callable[..., Any])


def _locked(fn: F) -> F:
    # paho's thread writes while a test or the CLI reads: one connection, one lock.
    @functools.wraps(fn)
    def wrapper(self: HubStore, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            return fn(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class HubStore:
    def __init__(self, path: str) -> None:
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(path, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(_SCHEMA)

    @_locked
    def close(self) -> None:
        self.conn.close()

    def _count(self, gateway: str, name: str, n: int) -> None:
        if n:
            self.conn.execute(
                "INSERT INTO counters VALUES(?,?,?) ON CONFLICT(gateway, name) DO UPDATE SET value = value + excluded.value",
                (gateway, name, n),
            )

    def _new_seqs(self, gateway: str, seqs: list[int]) -> set[int]:
        lo, hi = min(seqs), max(seqs)
        have = {s for (s,) in self.conn.execute("SELECT seq FROM seen WHERE gateway=? AND seq BETWEEN ? AND ?", (gateway, lo, hi))}
        fresh: set[int] = set()
        for s in seqs:
            if s not in have and s not in fresh:
                fresh.add(s)
        return fresh

    @_locked
    def add_readings(self, p: ReadingsPayload) -> tuple[int, int]:
        """Store the new readings of a message; returns (new, duplicates)."""
        fresh = self._new_seqs(p.gateway, [r.seq for r in p.readings])
        now = time.time()
        rows = [
            (p.gateway, r.seq, p.site, p.device, r.metric, r.value, r.unit, r.status, r.detail, r.ts, r.time, p.boot, r.mono_ns, now)
            for r in p.readings
            if r.seq in fresh
        ]
        with self.conn:
            self.conn.executemany("INSERT OR IGNORE INTO seen VALUES(?,?)", [(p.gateway, s) for s in fresh])
            self.conn.executemany("INSERT OR IGNORE INTO readings VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
            self._count(p.gateway, "readings", len(rows))
            self._count(p.gateway, "duplicates", len(p.readings) - len(rows))
        return len(rows), len(p.readings) - len(rows)

    @_locked
    def add_events(self, p: EventsPayload) -> tuple[int, int]:
        fresh = self._new_seqs(p.gateway, [e.seq for e in p.events])
        now = time.time()
        rows = [(p.gateway, e.seq, e.kind, json.dumps(e.data), e.ts, e.time, p.boot, now) for e in p.events if e.seq in fresh]
        with self.conn:
            self.conn.executemany("INSERT OR IGNORE INTO seen VALUES(?,?)", [(p.gateway, s) for s in fresh])
            self.conn.executemany("INSERT OR IGNORE INTO events VALUES(?,?,?,?,?,?,?,?)", rows)
            self._count(p.gateway, "events", len(rows))
            self._count(p.gateway, "duplicates", len(p.events) - len(rows))
        return len(rows), len(p.events) - len(rows)

    @_locked
    def set_latest(self, kind: str, p: StatusPayload | HealthPayload, raw: bytes) -> None:
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO latest VALUES(?,?,?,?)", (p.gateway, kind, raw.decode("utf-8", "replace"), time.time()))
            if kind == "status":
                self._count(p.gateway, f"status_{p.state}", 1)  # type: ignore[union-attr]

    @_locked
    def add_invalid(self, topic: str, error: str, payload: bytes) -> None:
        with self.conn:
            self.conn.execute("INSERT INTO invalid VALUES(?,?,?,?)", (time.time(), topic, error, payload[:4096]))
            self.conn.execute("DELETE FROM invalid WHERE rowid <= (SELECT max(rowid) FROM invalid) - ?", (INVALID_KEPT,))
            self._count("", "invalid", 1)

    # -- queries -------------------------------------------------------------

    @_locked
    def gateways(self) -> list[str]:
        return [g for (g,) in self.conn.execute("SELECT DISTINCT gateway FROM seen ORDER BY gateway")]

    @_locked
    def seqs(self, gateway: str) -> list[int]:
        return [s for (s,) in self.conn.execute("SELECT seq FROM seen WHERE gateway=? ORDER BY seq", (gateway,))]

    @_locked
    def gaps(self, gateway: str) -> list[tuple[int, int]]:
        """Missing runs (first, last) between the lowest and highest sequence number seen."""
        rows = self.conn.execute(
            "SELECT seq + 1, nxt - 1 FROM (SELECT seq, LEAD(seq) OVER (ORDER BY seq) AS nxt FROM seen WHERE gateway=?) WHERE nxt > seq + 1",
            (gateway,),
        ).fetchall()
        return [(a, b) for a, b in rows]

    @_locked
    def explained(self, gateway: str) -> list[tuple[int, int, str]]:
        """Ranges the gateway itself reported as lost: (first, last, reason)."""
        out: list[tuple[int, int, str]] = []
        for kind, data in self.conn.execute("SELECT kind, data FROM events WHERE gateway=? AND kind IN ('dropped', 'seq_jump')", (gateway,)):
            d = json.loads(data)
            if kind == "dropped" and "first_seq" in d:
                out.append((int(d["first_seq"]), int(d["last_seq"]), f"dropped ({d.get('reason', '?')})"))
            elif kind == "seq_jump":
                out.append((0, int(d["to"]) - 1, "outbox database replaced"))
        return out

    @_locked
    def unexplained_gaps(self, gateway: str) -> list[tuple[int, int]]:
        ranges = self.explained(gateway)
        return [(a, b) for a, b in self.gaps(gateway) if not any(lo <= a and b <= hi for lo, hi, _ in ranges)]

    @_locked
    def counters(self, gateway: str) -> dict[str, int]:
        return dict(self.conn.execute("SELECT name, value FROM counters WHERE gateway=?", (gateway,)).fetchall())

    @_locked
    def latest(self, gateway: str, kind: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT payload FROM latest WHERE gateway=? AND kind=?", (gateway, kind)).fetchone()
        return json.loads(row[0]) if row else None

    @_locked
    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"invalid": self.counters("").get("invalid", 0), "gateways": {}}
        for gw in self.gateways():
            lo, hi = self.conn.execute("SELECT min(seq), max(seq) FROM seen WHERE gateway=?", (gw,)).fetchone()
            c = self.counters(gw)
            status = self.latest(gw, "status")
            out["gateways"][gw] = {
                "readings": c.get("readings", 0),
                "events": c.get("events", 0),
                "duplicates": c.get("duplicates", 0),
                "first_seq": lo,
                "last_seq": hi,
                "gaps": self.gaps(gw),
                "unexplained_gaps": self.unexplained_gaps(gw),
                "state": status.get("state") if status else None,
            }
        return out
