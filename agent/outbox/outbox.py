"""The durable outbox: readings in, committed in small transactions, out only on PUBACK.

Promises (docs/storage.md):
- A crash or SIGKILL loses at most the readings not yet committed: commits
  happen every `commit_interval` (default 0.1 s) with synchronous=NORMAL.
- A power cut loses at most what was committed since the last sync of the
  write-ahead log, every `sync_interval` (default 1 s).

`add` is called from the event loop by drivers and only appends to a bounded
list; all SQLite work happens on one worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from agent.outbox.backlog import Backlog
from agent.outbox.caps import Drop
from agent.outbox.store import EVENT_DEVICE, TQ_UNSYNCED, Row, Store, is_corrupt
from agent.readings import Reading
from agent.runtime.clock import Clock, mono_ns

if TYPE_CHECKING:
    from agent.outbox.config import StorageConfig

T = TypeVar("T")


class Outbox:
    def __init__(self, config: StorageConfig, *, data_dir: str, clock: Clock, log: logging.Logger) -> None:
        self.config = config
        self.clock = clock
        self.log = log
        self.path = config.path or os.path.join(data_dir, "outbox.db")
        self.store = Store(self.path, seq_block=config.seq_block)
        self._pending: deque[Reading] = deque()
        self.backlog = Backlog(config.memory_readings)
        # events are few and must not be pushed out by a flood of readings
        self._events: deque[Reading] = deque(maxlen=1000)
        self._last_attempt = -1e9
        self._acked: list[int] = []
        self._executor: ThreadPoolExecutor | None = None
        self._listeners: list[Callable[[], None]] = []
        self._closed = False
        self._opened = False
        self._rebase: tuple[str, float] | None = None
        self._rebased_stored = False
        self._last_sync_mono = 0.0
        self._unsynced = False
        self._dropped: dict[str, int] = {}
        self._unreported_memory_drops = 0
        self._last_drop_log = -1e9
        self._flush_lock = asyncio.Lock()
        self._sync_executor: ThreadPoolExecutor | None = None
        self._sync_future: asyncio.Future[None] | None = None
        self.degraded: str | None = None
        self.last_commit_wall: float | None = None
        self.last_error: str | None = None
        self.committed = 0
        self.corrupt_files: list[str] = []

    # -- lifecycle -------------------------------------------------------------

    async def open(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self._sync_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-sync")
        report = await self._call(self.store.open)
        self._opened = True
        self._handle_open_report(report)
        self.log.info("outbox %s: %d unsent readings, next sequence number %d", self.path, self.store.rows, self.store.next_seq)

    def _handle_open_report(self, report: dict[str, Any]) -> None:
        if "moved_aside" in report:
            self.corrupt_files.append(report["moved_aside"])
            self.log.error(
                "outbox database %s was corrupt (%s); moved it aside to %s and started a new one. "
                "Its unsent readings are not lost on disk: copy the file off the gateway for recovery.",
                self.path,
                report.get("error", "integrity check failed"),
                report["moved_aside"],
            )
            self.event("outbox_corrupt", {"moved_to": report["moved_aside"], "error": report.get("error", "")})
        if "seq_jump" in report:
            jump = report["seq_jump"]
            self.log.warning("outbox database is new; sequence numbers continue at %d (high-water mark)", jump["to"])
            self.event("seq_jump", jump)

    async def run(self) -> None:
        """Commit every commit_interval, sync every sync_interval, enforce caps, re-base times."""
        interval = self.config.commit_interval
        refreshed = 0.0
        wake = self.backlog.wake
        while not self._closed:
            started = time.monotonic()
            wake.clear()  # this flush takes what is pending; a mark crossed from here on asks for the next
            await self.flush()
            if started - refreshed >= 5.0:
                # keep stats() current for diagnostics between health messages
                refreshed = started
                await self.refresh()
            delay = interval - (time.monotonic() - started)
            if delay > 0 and not wake.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), delay)

    async def close(self) -> None:
        if self._closed or self._executor is None:
            self._closed = True
            return
        self._closed = True
        try:
            if self._opened:
                await self.flush(force_sync=True)
                await self._call(self.store.close)
        finally:
            self._executor.shutdown(wait=True)
            if self._sync_executor is not None:
                self._sync_executor.shutdown(wait=True)

    # -- ingest ----------------------------------------------------------------

    def add(self, readings: list[Reading]) -> None:
        """Queue readings for the next commit. Never blocks; bounded."""
        pending = self._pending
        pending.extend(readings)
        waiting = len(pending)
        if waiting >= self.backlog.commit_at:
            self.backlog.filled(waiting, storing=self.degraded is None)
        excess = waiting - self.config.memory_readings
        if excess > 0:
            for _ in range(excess):
                pending.popleft()
            self._count_drop("memory", excess)
            self._unreported_memory_drops += excess

    def event(self, kind: str, data: dict[str, Any]) -> None:
        """A durable event for the hub; stored and sequenced like a reading."""
        r = self.clock.reading(EVENT_DEVICE, kind, json.dumps(data, separators=(",", ":"), default=str))
        self._events.append(r)

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Called (on the event loop) after each commit that stored something."""
        self._listeners.append(callback)

    def on_backlog(self, callback: Callable[[bool], None]) -> None:
        """`callback(True)` (on the event loop, from `add`) when readings wait for the commit in numbers
        that would soon be dropped: hold polls back; `callback(False)` once a commit has caught up."""
        self.backlog.listen(callback)

    # -- the commit tick -------------------------------------------------------

    async def flush(self, *, force_sync: bool = False) -> None:
        """Commit what is pending, delete what was acknowledged, enforce the caps, sync when due."""
        async with self._flush_lock:
            await self._flush(force_sync)

    async def _flush(self, force_sync: bool) -> None:
        self._check_clock()
        if self._unreported_memory_drops and not self.degraded:
            # While storage fails the count accumulates: one event once it can be stored, not one per retry.
            n, self._unreported_memory_drops = self._unreported_memory_drops, 0
            self.log.warning("outbox memory buffer full: dropped the %d oldest uncommitted readings", n)
            self.event("dropped", {"count": n, "reason": "memory"})
        now = time.monotonic()
        if self.degraded and now - self._last_attempt < 1.0 and not force_sync:
            return  # storage is failing: retry once a second, not every commit tick
        self._last_attempt = now
        events = list(self._events)
        self._events.clear()
        batch = events + list(self._pending)
        self._pending.clear()
        acked, self._acked = self._acked, []
        rebase = self._rebase
        if not batch and not acked and not (rebase and not self._rebased_stored):
            # Idle: no empty transactions, no fsync, nothing to wear the SD card.
            due = time.monotonic() - self._last_sync_mono >= self.config.sync_interval
            if self._unsynced and (force_sync or due):
                await self._sync(wait=force_sync)
            return
        try:
            inserted, _ = await self._call(self.store.write, batch, acked, rebase=rebase)
        except (sqlite3.Error, OSError) as exc:
            # Put them back in front, in order, for the next attempt.
            self._pending.extendleft(reversed(batch[len(events) :]))
            self._events.extendleft(reversed(events))
            self._acked = acked + self._acked
            self.backlog.storage_failed()
            await self._store_failed(exc)
            self.add([])  # re-apply the memory bound
            return
        if self.degraded:
            self.log.warning("outbox storage recovered after: %s", self.degraded)
            self.event("storage_recovered", {"after": self.degraded})
            self.degraded = None
        self.committed += inserted
        self.last_commit_wall = time.time()
        self.backlog.committed(len(self._pending))
        if rebase and not self._rebased_stored:
            n = await self._call(self.store.rebase_stored, *rebase)
            self._rebased_stored = True
            if n:
                self.log.info("wall clock synchronised: re-based %d readings stamped before", n)
        await self._enforce_caps()
        self._unsynced = True
        if force_sync or time.monotonic() - self._last_sync_mono >= self.config.sync_interval:
            await self._sync(wait=force_sync)
        if inserted:
            for cb in self._listeners:
                cb()

    async def _sync(self, *, wait: bool = False) -> None:
        """fsync the log on its own thread: a slow card must not hold up commits and sends."""
        running = self._sync_future
        if running is not None and not running.done():
            if not wait:
                return  # the previous sync is still running; the next tick tries again
            await asyncio.wait([running])
        self._last_sync_mono = time.monotonic()
        self._unsynced = False
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._sync_executor, self.store.sync)
        fut.add_done_callback(self._sync_done)
        self._sync_future = fut
        if wait:
            await asyncio.wait([fut])

    def _sync_done(self, fut: asyncio.Future[None]) -> None:
        exc = None if fut.cancelled() else fut.exception()
        if exc is None:
            return
        self._unsynced = True
        text = f"{type(exc).__name__}: {exc}"
        if self.last_error != text:
            self.log.error("outbox cannot sync %s to storage (%s); a power cut may lose more than sync_interval", self.path, text)
        self.last_error = text

    def _check_clock(self) -> None:
        if self._rebase is None and self.clock.synced():
            # wall = offset + mono for this boot, from now on
            self._rebase = (self.clock.boot_id, time.time() - mono_ns() / 1e9)

    async def _enforce_caps(self) -> None:
        drops: list[Drop] = []
        try:
            d = await self._call(self.store.enforce_bytes, self.config.max_bytes)
            if d:
                drops.append(d)
            if self.config.max_age and self._rebase is not None:
                d = await self._call(self.store.enforce_age, time.time() - self.config.max_age)
                if d:
                    drops.append(d)
        except sqlite3.Error as exc:
            await self._store_failed(exc)
            return
        for d in drops:
            self._count_drop(d.reason, d.count)
            now = time.monotonic()
            if now - self._last_drop_log >= 60.0:
                # the first drop, then one line a minute however fast readings are dropped
                self._last_drop_log = now
                self.log.warning(
                    "outbox over its %s cap: dropping the oldest unsent readings (%d so far, seq %d..%d); the hub is told. "
                    "Check the uplink, or raise storage.max_bytes if the card has room.",
                    d.reason,
                    self._dropped.get(d.reason, 0),
                    d.span_first,
                    d.last_seq,
                )
            # first_seq..last_seq spans every drop the hub has not yet been told of (see store.Drop)
            self.event("dropped", {"count": d.count, "reason": d.reason, "first_seq": d.span_first, "last_seq": d.last_seq, "span_count": d.span_count})

    async def _store_failed(self, exc: BaseException) -> None:
        text = f"{type(exc).__name__}: {exc}"
        self.last_error = text
        if isinstance(exc, sqlite3.DatabaseError) and is_corrupt(exc):
            report = await self._call(self.store.reopen_after_corruption)
            self._rebased_stored = False
            self._handle_open_report({**report, "error": str(exc)})
            return
        if self.degraded is None:
            self.log.error(
                "outbox cannot write %s (%s); keeping up to %d readings in memory until it can. Free space on the data partition or check the SD card.",
                self.path,
                text,
                self.config.memory_readings,
            )
            self.event("storage_degraded", {"error": text})
        self.degraded = text

    def _count_drop(self, reason: str, n: int) -> None:
        self._dropped[reason] = self._dropped.get(reason, 0) + n

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        assert self._executor is not None, "Outbox.open() was not awaited"
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    # -- for the uplink --------------------------------------------------------

    async def fetch(self, after_seq: int, limit: int) -> list[Row]:
        """Committed rows with seq > after_seq, oldest first; [] while the store is failing."""
        if self.degraded or self._closed:
            return []
        try:
            return await self._call(self.store.fetch, after_seq, limit)
        except sqlite3.Error as exc:
            await self._store_failed(exc)
            return []

    def ack(self, seqs: list[int]) -> None:
        """The broker acknowledged these; they are deleted with the next commit."""
        self._acked.extend(seqs)

    def pending_share(self) -> float:
        """The share of the memory buffer (readings waiting for a commit) in use; at 1 the oldest are dropped."""
        return len(self._pending) / self.config.memory_readings

    # -- for health telemetry --------------------------------------------------

    def stats(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "depth": self.store.rows,
            "pending": len(self._pending) + len(self._events),
            "next_seq": self.store.next_seq,
            "oldest_unsent_age": self._oldest_age,
            "bytes": self._bytes,
            "max_bytes": self.config.max_bytes,
            "dropped": sum(self._dropped.values()),
            "dropped_by_reason": dict(self._dropped),
            "committed": self.committed,
            "degraded": self.degraded is not None,
            "last_error": self.last_error,
            "last_commit": self.last_commit_wall,
            "corrupt_files": list(self.corrupt_files),
            "clock_rebased": self._rebase is not None,
        }

    _oldest_age: float | None = None
    _bytes: int | None = None

    async def refresh(self) -> None:
        """Update the figures that need the database: oldest unsent age and bytes used."""
        if self.degraded or self._closed or not self._opened:
            return
        try:
            row, used = await self._call(lambda: (self.store.oldest(), self.store.used_bytes()))
        except sqlite3.Error:
            return
        self._bytes = used
        # untrusted (unsynced) times give no age; None also when empty
        self._oldest_age = None if row is None or row[1] == TQ_UNSYNCED else max(0.0, time.time() - row[0])
