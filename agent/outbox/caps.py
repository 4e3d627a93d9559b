"""Caps of the outbox: bytes on disk and age; which rows go and how the hub is told.

A mixin of agent.outbox.store.Store (same connection, same worker thread).
"""

from __future__ import annotations

import contextlib
import math
import sqlite3

TQ_UNSYNCED = 0  # same as agent.outbox.store.TQ_UNSYNCED


class Drop:
    """Rows the store removed unsent.

    `count` is this drop; `span_first`..`last_seq` and `span_count` cover every
    drop since the hub last acknowledged a `dropped` event, so the newest event
    alone explains every gap even when older events were dropped too.
    """

    __slots__ = ("count", "first_seq", "last_seq", "reason", "span_first", "span_count")

    def __init__(self, count: int, first_seq: int, last_seq: int, reason: str, span_first: int = 0, span_count: int = 0) -> None:
        self.count = count
        self.first_seq = first_seq
        self.last_seq = last_seq
        self.reason = reason
        self.span_first = span_first or first_seq
        self.span_count = span_count or count


class CapsMixin:
    conn: sqlite3.Connection | None
    rows: int
    drop_first: int
    drop_count: int
    drop_event: int
    _dropped_since_event: bool

    def _transaction(self) -> contextlib.AbstractContextManager[None]:  # provided by Store
        raise NotImplementedError

    def _set_meta(self, key: str, value: int) -> None:  # provided by Store
        raise NotImplementedError

    def _set_drop_span(self, first: int, count: int, event: int) -> None:
        self.drop_first, self.drop_count, self.drop_event = first, count, event
        self._set_meta("drop_first", first)
        self._set_meta("drop_count", count)
        self._set_meta("drop_event", event)

    def _record_drop(self, n: int, lo: int, hi: int, reason: str) -> Drop:
        """Called inside the deleting transaction."""
        self._set_drop_span(self.drop_first or lo, self.drop_count + n, self.drop_event)
        self._dropped_since_event = True
        return Drop(n, lo, hi, reason, self.drop_first, self.drop_count)

    # -- caps ------------------------------------------------------------------

    def used_bytes(self) -> int:
        conn = self.conn
        assert conn is not None
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        return (pages - free) * size

    def enforce_bytes(self, max_bytes: int) -> Drop | None:
        """Drop the oldest rows when the file's used pages exceed max_bytes (down to 90 %)."""
        used = self.used_bytes()
        if used <= max_bytes or self.rows <= 0:
            return None
        share = 1.0 - 0.9 * max_bytes / used
        count = max(1, min(self.rows, math.ceil(self.rows * share)))
        return self._drop_oldest(count, "max_bytes")

    def enforce_age(self, oldest_wall: float) -> Drop | None:
        """Drop rows whose trusted wall time is before `oldest_wall`."""
        conn = self.conn
        assert conn is not None
        n, lo, hi = conn.execute("SELECT count(*), min(seq), max(seq) FROM outbox WHERE tq != ? AND wall < ?", (TQ_UNSYNCED, oldest_wall)).fetchone()
        if not n:
            return None
        with self._transaction():
            cur = conn.execute("DELETE FROM outbox WHERE tq != ? AND wall < ?", (TQ_UNSYNCED, oldest_wall))
            self._set_meta("rows", self.rows - cur.rowcount)
            drop = self._record_drop(cur.rowcount, lo, hi, "max_age")
        self.rows -= cur.rowcount
        return drop

    def _drop_oldest(self, count: int, reason: str) -> Drop | None:
        conn = self.conn
        assert conn is not None
        row = conn.execute("SELECT min(seq), (SELECT seq FROM outbox ORDER BY seq LIMIT 1 OFFSET ?) FROM outbox", (count - 1,)).fetchone()
        lo, hi = row
        if lo is None:
            return None
        if hi is None:
            hi = conn.execute("SELECT max(seq) FROM outbox").fetchone()[0]
        with self._transaction():
            cur = conn.execute("DELETE FROM outbox WHERE seq <= ?", (hi,))
            self._set_meta("rows", self.rows - cur.rowcount)
            drop = self._record_drop(cur.rowcount, lo, hi, reason)
        self.rows -= cur.rowcount
        return drop
