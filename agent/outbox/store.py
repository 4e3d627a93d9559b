"""The outbox's SQLite file: synchronous calls, run on the outbox's one worker thread.

Every method here blocks; agent.outbox.outbox calls them through a single-thread
executor so the event loop never waits on the SD card and the connection is
only ever used by one thread at a time.

Layout: one `outbox` table keyed by the sequence number (the rowid, so inserts
append and "oldest first" is a walk of the primary key), a `boots` table so a
36-character boot id is stored once per boot and not once per reading, and a
`meta` table with the next sequence number and the row count, both updated in
the same transaction as the rows they describe.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from agent.outbox.caps import CapsMixin
from agent.outbox.seqfile import SeqFile
from agent.readings import Reading

# Value kinds: SQLite has no boolean and events carry a JSON object.
VK_PLAIN = 0
VK_BOOL = 1
VK_JSON = 2

# Time quality of `wall`, also what the payload's `time` field says.
TQ_UNSYNCED = 0
TQ_SYNCED = 1
TQ_REBASED = 2

# Device name of events stored among the readings; device names cannot start with "_".
EVENT_DEVICE = "_event"

_CORRUPT_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS boots(id INTEGER PRIMARY KEY, boot_id TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS outbox(
    seq INTEGER PRIMARY KEY,
    device TEXT NOT NULL,
    metric TEXT NOT NULL,
    value,
    vk INTEGER NOT NULL,
    unit TEXT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT NOT NULL,
    boot INTEGER NOT NULL,
    mono_ns INTEGER NOT NULL,
    wall REAL NOT NULL,
    tq INTEGER NOT NULL
);
"""

# One fetched row: (seq, device, metric, value, unit, status, detail, boot_id, mono_ns, wall, tq)
Row = tuple[int, str, str, Any, str, str, str, str, int, float, int]


def is_corrupt(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in _CORRUPT_CODES
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


class Store(CapsMixin):
    def __init__(self, path: str, *, seq_block: int = 1_000_000) -> None:
        self.path = path
        self.seqfile = SeqFile(path + ".seq")
        self.seq_block = seq_block
        self.conn: sqlite3.Connection | None = None
        self._ckpt: sqlite3.Connection | None = None  # the sync thread's own connection
        self._ckpt_lock = threading.Lock()
        self.next_seq = 1
        self.rows = 0
        self._reserved = 0
        self._boot_ids: dict[str, int] = {}
        self._boot_names: dict[int, str] = {}
        # the drop span: see Drop
        self.drop_first = 0
        self.drop_count = 0
        self.drop_event = 0
        self._dropped_since_event = False

    # -- opening ---------------------------------------------------------------

    def open(self) -> dict[str, Any]:
        """Open or create the file. Returns what the caller must report.

        A corrupt file is renamed aside (with its -wal and -shm) and a new one
        created; the returned dict then names it. Other errors propagate.
        """
        report: dict[str, Any] = {}
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        existed = os.path.exists(self.path)
        try:
            self._connect()
        except sqlite3.DatabaseError as exc:
            if not is_corrupt(exc):
                raise
            report["moved_aside"] = self.move_aside()
            report["error"] = str(exc)
            existed = False
            self._connect()
        bound = self.seqfile.read()
        if not existed or "moved_aside" in report:
            if bound >= self.next_seq:
                # A lost or deleted database: continue above everything ever issued.
                report["seq_jump"] = {"from": self.next_seq, "to": bound + 1}
                self.next_seq = bound + 1
                self._set_meta("next_seq", self.next_seq)
                self.conn.commit()  # type: ignore[union-attr]
        self._reserved = max(bound, self.next_seq - 1)
        return report

    def _connect(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            # Keep the -wal file from staying huge after a burst (a big flash write each time).
            conn.execute("PRAGMA journal_size_limit=8388608")
            # checkpoints run on the sync thread (see sync); this is the backstop (40 MB of log)
            conn.execute("PRAGMA wal_autocheckpoint=10000")
            conn.executescript(_SCHEMA)
            conn.execute("BEGIN")
            conn.execute("INSERT OR IGNORE INTO meta VALUES('next_seq', 1)")
            conn.execute("INSERT OR IGNORE INTO meta VALUES('rows', -1)")
            for key in ("drop_first", "drop_count", "drop_event"):
                conn.execute("INSERT OR IGNORE INTO meta VALUES(?, 0)", (key,))
            conn.execute("COMMIT")
            meta = dict(conn.execute("SELECT key, value FROM meta"))
            self.next_seq = int(meta["next_seq"])
            self.rows = int(meta["rows"])
            self.drop_first, self.drop_count, self.drop_event = (int(meta[k]) for k in ("drop_first", "drop_count", "drop_event"))
            self._dropped_since_event = bool(self.drop_first)
            if self.rows < 0:
                # Fresh file, or one written before the counter existed.
                self.rows = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
            top = conn.execute("SELECT max(seq) FROM outbox").fetchone()[0]
            if top is not None and top >= self.next_seq:
                self.next_seq = top + 1
            self._boot_ids = {b: i for i, b in conn.execute("SELECT id, boot_id FROM boots")}
            self._boot_names = {i: b for b, i in self._boot_ids.items()}
        except BaseException:
            conn.close()
            raise
        self.conn = conn

    def move_aside(self) -> str:
        """Rename the database (and its journal files) to <path>.corrupt-<time>; returns the new name."""
        self._close_checkpointer()
        if self.conn is not None:
            try:
                self.conn.close()
            except sqlite3.Error:
                pass
            self.conn = None
        target = f"{self.path}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(self.path + suffix):
                os.replace(self.path + suffix, target + suffix)
        self._boot_ids.clear()
        self._boot_names.clear()
        return target

    def reopen_after_corruption(self) -> dict[str, Any]:
        moved = self.move_aside()
        report = self.open()
        report["moved_aside"] = moved
        return report

    def close(self) -> None:
        self._close_checkpointer()
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    # -- writing ---------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        conn = self.conn
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.rollback()
            raise
        conn.execute("COMMIT")

    def _set_meta(self, key: str, value: int) -> None:
        self.conn.execute("UPDATE meta SET value=? WHERE key=?", (value, key))  # type: ignore[union-attr]

    def _boot(self, boot_id: str) -> int:
        ident = self._boot_ids.get(boot_id)
        if ident is None:
            cur = self.conn.execute("INSERT OR IGNORE INTO boots(boot_id) VALUES(?)", (boot_id,))  # type: ignore[union-attr]
            ident = (
                cur.lastrowid
                if cur.rowcount
                else self.conn.execute(  # type: ignore[union-attr]
                    "SELECT id FROM boots WHERE boot_id=?", (boot_id,)
                ).fetchone()[0]
            )
            self._boot_ids[boot_id] = ident
            self._boot_names[ident] = boot_id
        return ident

    def write(
        self,
        readings: Sequence[Reading],
        acked: Iterable[int] = (),
        *,
        rebase: tuple[str, float] | None = None,
    ) -> tuple[int, int]:
        """Insert `readings` with new sequence numbers and delete `acked`, in one transaction.

        `rebase` = (boot_id, wall - mono offset) corrects unsynced readings of
        that boot on the way in. Sets each reading's `seq` only once the
        transaction committed. Returns (inserted, deleted).
        """
        conn = self.conn
        assert conn is not None, "outbox store is not open"
        first = self.next_seq
        last = first + len(readings) - 1
        if last > self._reserved:
            # Reserve before the numbers can become visible anywhere.
            self._reserved = last + self.seq_block
            self.seqfile.write(self._reserved)
        rows = []
        seq = first
        boot_cache: dict[str, int] = {}
        rb_boot, rb_offset = rebase if rebase else ("", 0.0)
        new_drop_event = 0
        try:
            conn.execute("BEGIN IMMEDIATE")
            for r in readings:
                boot = boot_cache.get(r.boot_id)
                if boot is None:
                    boot = boot_cache[r.boot_id] = self._boot(r.boot_id)
                value = r.value
                vk = VK_PLAIN
                if value is True or value is False:
                    vk = VK_BOOL
                    value = int(value)
                elif r.device == EVENT_DEVICE:
                    vk = VK_JSON
                    if r.metric == "dropped" and '"first_seq"' in str(value):
                        new_drop_event = seq
                wall = r.wall
                if r.synced:
                    tq = TQ_SYNCED
                elif rebase and r.boot_id == rb_boot:
                    wall = rb_offset + r.mono_ns / 1e9
                    tq = TQ_REBASED
                else:
                    tq = TQ_UNSYNCED
                rows.append((seq, r.device, r.metric, value, vk, r.unit, r.status, r.detail, boot, r.mono_ns, wall, tq))
                seq += 1
            if rows:
                conn.executemany("INSERT INTO outbox VALUES(?,?,?,?,?,?,?,?,?,?,?,?)", rows)
            deleted = 0
            acked = list(acked)
            if acked:
                deleted = self._delete(acked)
                if self.drop_event and not self._dropped_since_event and self.drop_event in set(acked):
                    # the hub has the event that explains every drop so far: start a new span
                    self._set_drop_span(0, 0, 0)
            if new_drop_event:
                self._set_drop_span(self.drop_first, self.drop_count, new_drop_event)
                self._dropped_since_event = False
            self._set_meta("next_seq", seq)
            self._set_meta("rows", self.rows + len(rows) - deleted)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            # rows inserted into a rolled-back transaction left the boots cache stale
            self._boot_ids = {b: i for i, b in conn.execute("SELECT id, boot_id FROM boots")} if not _closed(conn) else {}
            self._boot_names = {i: b for b, i in self._boot_ids.items()}
            raise
        self.next_seq = seq
        self.rows += len(rows) - deleted
        seq = first
        for r in readings:
            r.seq = seq
            if rebase and not r.synced and r.boot_id == rb_boot:
                r.wall = rb_offset + r.mono_ns / 1e9
            seq += 1
        return len(rows), deleted

    def _delete(self, seqs: list[int]) -> int:
        """Delete by sequence number; acknowledged numbers come in long runs, so delete ranges."""
        conn = self.conn
        assert conn is not None
        ranges: list[tuple[int, int]] = []
        for seq in sorted(set(seqs)):
            if ranges and ranges[-1][1] == seq - 1:
                ranges[-1] = (ranges[-1][0], seq)
            else:
                ranges.append((seq, seq))
        before = conn.total_changes
        conn.executemany("DELETE FROM outbox WHERE seq BETWEEN ? AND ?", ranges)
        return conn.total_changes - before

    def rebase_stored(self, boot_id: str, offset: float) -> int:
        """Correct the stored unsynced readings of `boot_id` once its wall clock is known."""
        conn = self.conn
        assert conn is not None
        boot = self._boot_ids.get(boot_id)
        if boot is None:
            return 0
        with self._transaction():
            cur = conn.execute(
                "UPDATE outbox SET wall = ? + mono_ns / 1e9, tq = ? WHERE tq = ? AND boot = ?",
                (offset, TQ_REBASED, TQ_UNSYNCED, boot),
            )
        return cur.rowcount

    # -- reading ---------------------------------------------------------------

    def fetch(self, after_seq: int, limit: int) -> list[Row]:
        conn = self.conn
        assert conn is not None
        rows = conn.execute(
            "SELECT seq, device, metric, value, vk, unit, status, detail, boot, mono_ns, wall, tq FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        ).fetchall()
        names = self._boot_names
        out: list[Row] = []
        for seq, device, metric, value, vk, unit, status, detail, boot, mono, wall, tq in rows:
            if vk == VK_BOOL:
                value = bool(value)
            name = names.get(boot)
            if name is None:
                name = conn.execute("SELECT boot_id FROM boots WHERE id=?", (boot,)).fetchone()[0]
                names[boot] = name
            out.append((seq, device, metric, value, unit, status, detail, name, mono, wall, tq))
        return out

    def oldest(self) -> tuple[float, int] | None:
        """(wall, tq) of the oldest unsent row, None when empty."""
        conn = self.conn
        assert conn is not None
        return conn.execute("SELECT wall, tq FROM outbox ORDER BY seq LIMIT 1").fetchone()

    # -- durability ------------------------------------------------------------

    def sync(self) -> None:
        """Make every committed transaction durable, then checkpoint; runs on the sync thread.

        With synchronous=NORMAL a commit only writes the log. Syncing it here on
        an interval bounds what a power cut can take without an fsync per commit.
        The checkpoint (copying the log into the database) also runs here, on a
        connection of this thread, so its writes and syncs never stall a commit
        or a send on the outbox thread; SQLite's own automatic checkpoint on the
        committing connection is only a backstop.
        """
        for suffix in ("-wal", ""):
            try:
                fd = os.open(self.path + suffix, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        with self._ckpt_lock:
            if self.conn is None:
                return  # closed or being replaced
            if self._ckpt is None:
                self._ckpt = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=0.5)
            try:
                self._ckpt.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.OperationalError:
                pass  # the log is synced, which is the promise; the next interval checkpoints

    def _close_checkpointer(self) -> None:
        with self._ckpt_lock:
            if self._ckpt is not None:
                try:
                    self._ckpt.close()
                except sqlite3.Error:
                    pass
                self._ckpt = None


def _closed(conn: sqlite3.Connection) -> bool:
    try:
        _ = conn.total_changes
    except sqlite3.ProgrammingError:
        return True
    return False
