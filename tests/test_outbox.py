"""The outbox against real SQLite files in a temporary directory."""

from __future__ import annotations

import asyncio
import glob
import json
import logging
import os
import sqlite3
import time

from agent.outbox import Outbox
from agent.outbox.config import StorageConfig
from agent.outbox.store import EVENT_DEVICE, TQ_REBASED, TQ_SYNCED, TQ_UNSYNCED
from agent.readings import Reading
from agent.runtime.clock import Clock, mono_ns

LOG = logging.getLogger("test.outbox")


def make_outbox(tmp_path, clock: Clock | None = None, **cfg) -> Outbox:
    return Outbox(StorageConfig(**cfg), data_dir=str(tmp_path), clock=clock or Clock("assume", boot_id="boot-a"), log=LOG)


def readings(clock: Clock, n: int, device: str = "meter-1", start: int = 0) -> list[Reading]:
    return [clock.reading(device, "active_power", float(start + i), "W") for i in range(n)]


def rows_on_disk(path: str) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT seq, device, metric, value, tq FROM outbox ORDER BY seq").fetchall()
    finally:
        conn.close()


async def fetch_all(ob: Outbox) -> list[tuple]:
    return await ob.fetch(0, 10_000_000)


def test_committed_readings_are_on_disk_with_consecutive_sequence_numbers(tmp_path):
    async def main():
        ob = make_outbox(tmp_path)
        await ob.open()
        batch = readings(ob.clock, 250)
        ob.add(batch)
        await ob.flush()
        on_disk = rows_on_disk(ob.path)  # another connection sees them: committed
        await ob.close()
        return batch, on_disk

    batch, on_disk = asyncio.run(main())
    assert [r[0] for r in on_disk] == list(range(1, 251))
    assert [r.seq for r in batch] == list(range(1, 251))
    assert on_disk[7][1:4] == ("meter-1", "active_power", 7.0)


def test_values_keep_their_types(tmp_path):
    async def main():
        ob = make_outbox(tmp_path)
        await ob.open()
        c = ob.clock
        ob.add(
            [c.reading("d", "a", True), c.reading("d", "b", 3), c.reading("d", "c", "text"), c.reading("d", "e", None, status="timeout", detail="no answer")]
        )
        await ob.flush()
        got = await fetch_all(ob)
        await ob.close()
        return got

    got = asyncio.run(main())
    assert [(r[2], r[3]) for r in got] == [("a", True), ("b", 3), ("c", "text"), ("e", None)]
    assert got[0][3] is True
    assert got[3][5:7] == ("timeout", "no answer")


def test_sequence_numbers_continue_after_restart_even_when_everything_was_sent(tmp_path):
    async def session(n: int, ack_all: bool) -> list[int]:
        ob = make_outbox(tmp_path)
        await ob.open()
        batch = readings(ob.clock, n)
        ob.add(batch)
        await ob.flush()
        if ack_all:
            ob.ack([r.seq for r in batch])
            await ob.flush()
        await ob.close()
        return [r.seq for r in batch]

    first = asyncio.run(session(10, ack_all=True))
    second = asyncio.run(session(5, ack_all=False))
    assert first == list(range(1, 11))
    assert second == list(range(11, 16))
    assert [r[0] for r in rows_on_disk(str(tmp_path / "outbox.db"))] == list(range(11, 16))


def test_only_acknowledged_readings_leave_the_outbox(tmp_path):
    async def main():
        ob = make_outbox(tmp_path)
        await ob.open()
        ob.add(readings(ob.clock, 10))
        await ob.flush()
        ob.ack([2, 3, 9])
        await ob.flush()
        left = [r[0] for r in await fetch_all(ob)]
        depth = ob.stats()["depth"]
        await ob.close()
        return left, depth

    left, depth = asyncio.run(main())
    assert left == [1, 4, 5, 6, 7, 8, 10]
    assert depth == 7


def test_close_commits_what_is_pending(tmp_path):
    async def main():
        ob = make_outbox(tmp_path)
        await ob.open()
        ob.add(readings(ob.clock, 3))
        await ob.close()
        return ob.path

    path = asyncio.run(main())
    assert len(rows_on_disk(path)) == 3


def test_run_commits_on_its_own_interval(tmp_path):
    async def main():
        ob = make_outbox(tmp_path, commit_interval=0.02)
        await ob.open()
        committed = asyncio.Event()
        ob.on_commit(committed.set)
        task = asyncio.create_task(ob.run())
        ob.add(readings(ob.clock, 4))
        await asyncio.wait_for(committed.wait(), 10)
        on_disk = rows_on_disk(ob.path)
        task.cancel()
        await ob.close()
        return on_disk

    assert len(asyncio.run(main())) == 4


def test_corrupt_database_is_moved_aside_reported_and_numbering_continues(tmp_path):
    async def first():
        ob = make_outbox(tmp_path)
        await ob.open()
        ob.add(readings(ob.clock, 20))
        await ob.close()

    asyncio.run(first())
    db = tmp_path / "outbox.db"
    for suffix in ("-wal", "-shm"):
        if os.path.exists(str(db) + suffix):
            os.remove(str(db) + suffix)
    db.write_bytes(b"this is not a database, the SD card ate it" * 200)

    async def second():
        ob = make_outbox(tmp_path)
        await ob.open()
        ob.add(readings(ob.clock, 2))
        await ob.flush()
        rows = await fetch_all(ob)
        stats = ob.stats()
        await ob.close()
        return rows, stats

    rows, stats = asyncio.run(second())
    aside = glob.glob(str(db) + ".corrupt-*")
    assert len(aside) == 1 and b"SD card ate it" in open(aside[0], "rb").read()
    events = {r[2]: json.loads(r[3]) for r in rows if r[1] == EVENT_DEVICE}
    assert events["outbox_corrupt"]["moved_to"] == aside[0]
    assert events["seq_jump"]["to"] > 20
    assert min(r[0] for r in rows) > 20  # never reuses 1..20
    assert stats["corrupt_files"] == aside


def test_deleted_database_never_reuses_sequence_numbers(tmp_path):
    async def session() -> list[int]:
        ob = make_outbox(tmp_path, seq_block=1000)
        await ob.open()
        batch = readings(ob.clock, 3)
        ob.add(batch)
        await ob.close()
        return [r.seq for r in batch]

    first = asyncio.run(session())
    for f in glob.glob(str(tmp_path / "outbox.db*")):
        if not f.endswith(".seq"):
            os.remove(f)
    second = asyncio.run(session())
    assert min(second) > max(first)


def test_byte_cap_drops_the_oldest_and_reports_how_many(tmp_path):
    async def main():
        ob = make_outbox(tmp_path, max_bytes=1024 * 1024)
        await ob.open()
        c = ob.clock
        for i in range(40):
            ob.add([c.reading("meter-1", "active_power", float(i * 1000 + k), "W", detail="x" * 40) for k in range(1000)])
            await ob.flush()
        stats = ob.stats()
        rows = await fetch_all(ob)
        used = ob.store.used_bytes()
        await ob.close()
        return stats, rows, used

    stats, rows, used = asyncio.run(main())
    assert used <= 1024 * 1024
    assert stats["dropped_by_reason"]["max_bytes"] > 0
    drops = [json.loads(r[3]) for r in rows if r[1] == EVENT_DEVICE and r[2] == "dropped"]
    assert sum(d["count"] for d in drops) <= stats["dropped"]
    assert drops and drops[-1]["reason"] == "max_bytes"
    values = [r[3] for r in rows if r[1] != EVENT_DEVICE]
    assert values[-1] == 39999.0  # the newest survive
    assert values == sorted(values)
    assert values[0] > 0  # the oldest went
    # the oldest go first: what is left is one unbroken run that starts right after the last drop
    kept = sorted(r[0] for r in rows)
    assert kept == list(range(kept[0], kept[-1] + 1))
    assert drops[-1]["last_seq"] == kept[0] - 1
    # nothing was acknowledged, so the newest event alone explains everything lost since seq 1
    assert drops[-1]["first_seq"] == 1 and drops[-1]["span_count"] == stats["dropped"]


def test_a_new_drop_span_starts_once_the_hub_has_the_event_that_explains_the_last(tmp_path):
    async def fill(ob, start):
        c = ob.clock
        for _ in range(start, start + 40):
            ob.add([c.reading("meter-1", "active_power", float(k), "W", detail="x" * 40) for k in range(1000)])
            await ob.flush()
            if any(r[1] == EVENT_DEVICE for r in await fetch_all(ob)):
                return

    async def main():
        ob = make_outbox(tmp_path, max_bytes=1024 * 1024)
        await ob.open()
        await fill(ob, 0)
        await ob.flush()  # commits the event of the last drop
        first = [(r[0], json.loads(r[3])) for r in await fetch_all(ob) if r[1] == EVENT_DEVICE]
        ob.ack([seq for seq, _ in first])  # the hub got it
        await ob.flush()
        await fill(ob, 100)
        second = [json.loads(r[3]) for r in await fetch_all(ob) if r[1] == EVENT_DEVICE]
        await ob.close()
        return first, second

    first, second = asyncio.run(main())
    assert first[-1][1]["first_seq"] == 1
    assert second[-1]["first_seq"] > first[-1][1]["last_seq"]


def test_memory_bound_drops_oldest_uncommitted_and_reports(tmp_path):
    async def main():
        ob = make_outbox(tmp_path, memory_readings=1000)
        await ob.open()
        ob.add(readings(ob.clock, 5000))
        pending = ob.stats()["pending"]
        await ob.flush()
        rows = await fetch_all(ob)
        stats = ob.stats()
        await ob.close()
        return pending, rows, stats

    pending, rows, stats = asyncio.run(main())
    assert pending == 1000
    assert stats["dropped_by_reason"] == {"memory": 4000}
    values = [r[3] for r in rows if r[1] != EVENT_DEVICE]
    assert values[0] == 4000.0 and values[-1] == 4999.0
    (event,) = [json.loads(r[3]) for r in rows if r[1] == EVENT_DEVICE]
    assert event == {"count": 4000, "reason": "memory"}


def test_readings_stamped_before_clock_sync_are_rebased_on_monotonic_time(tmp_path):
    clock = Clock("never", boot_id="boot-now")

    async def main():
        ob = make_outbox(tmp_path, clock=clock)
        await ob.open()
        early = clock.reading("meter-1", "active_power", 1.0, "W")
        early.wall = 1000.0  # 1970: the Pi booted without RTC
        age_s = 30.0
        early.mono_ns = mono_ns() - int(age_s * 1e9)
        old_boot = Reading("meter-1", "active_power", 2.0, "W", boot_id="boot-before", mono_ns=5, wall=2000.0, synced=False)
        ob.add([early, old_boot])
        await ob.flush()
        before = await fetch_all(ob)
        pending_early = clock.reading("meter-1", "active_power", 3.0, "W")
        pending_early.wall = 1000.0
        ob.add([pending_early])
        clock.mark_synced()
        await ob.flush()
        after = await fetch_all(ob)
        await ob.close()
        return before, after, time.time() - age_s

    before, after, expected_wall = asyncio.run(main())
    assert [r[10] for r in before] == [TQ_UNSYNCED, TQ_UNSYNCED]
    by_value = {r[3]: r for r in after}
    assert by_value[1.0][10] == TQ_REBASED
    assert abs(by_value[1.0][9] - expected_wall) < 5
    assert by_value[3.0][10] == TQ_REBASED and by_value[3.0][9] > 1e9
    # a previous boot's unsynced reading cannot be corrected: it stays flagged
    assert by_value[2.0][10] == TQ_UNSYNCED and by_value[2.0][9] == 2000.0


def test_max_age_drops_old_trusted_readings(tmp_path):
    async def main():
        ob = make_outbox(tmp_path, max_age=60)
        await ob.open()
        old = readings(ob.clock, 5)
        for r in old:
            r.wall -= 3600
        ob.add(old + readings(ob.clock, 2, start=100))
        await ob.flush()
        rows = await fetch_all(ob)
        await ob.close()
        return rows, ob.stats()

    rows, stats = asyncio.run(main())
    assert [r[3] for r in rows if r[1] != EVENT_DEVICE] == [100.0, 101.0]
    assert stats["dropped_by_reason"] == {"max_age": 5}
    assert [r[10] for r in rows if r[1] != EVENT_DEVICE] == [TQ_SYNCED, TQ_SYNCED]
