"""Readings piling up before the outbox's commit: committed early, polls held back at once, nothing dropped.

A real outbox on SQLite in a temporary directory, a real load governor and
real poll schedules; the schedules are computed on explicit clock values.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from agent.outbox import Outbox
from agent.outbox.backlog import HOLD_AT
from agent.outbox.config import StorageConfig
from agent.readings import Reading
from agent.runtime.clock import Clock
from agent.runtime.overload import SHED_FAST, TICK, Delivery, LoadGovernor, Measured
from drivers.base import PollPacing, PollSchedule

LOG = logging.getLogger("test.backlog")
MEMORY = 10_000


def make_outbox(tmp_path, **cfg) -> Outbox:
    return Outbox(StorageConfig(memory_readings=MEMORY, **cfg), data_dir=str(tmp_path), clock=Clock("assume", boot_id="boot-a"), log=LOG)


def readings(ob: Outbox, n: int) -> list[Reading]:
    return [ob.clock.reading("meter-1", "active_power", float(i), "W") for i in range(n)]


def governor() -> tuple[LoadGovernor, PollPacing]:
    pacing = PollPacing()
    pacing.note(0.01)
    pacing.note(1.0)
    return LoadGovernor(pacing, delivery=Delivery, log=LOG), pacing


def polls_in(schedule: PollSchedule, interval: float, slots: int) -> int:
    at, polls = 0.0, 0
    while at < slots * interval - 1e-9:
        polls += 1
        at = schedule.next_slot("p", at, interval, at)
    return polls


def test_readings_piling_up_hold_polls_back_at_once_until_a_commit_catches_up(tmp_path):
    gov, pacing = governor()

    async def main() -> tuple[list[bool], list[bool], int]:
        ob = make_outbox(tmp_path)
        await ob.open()
        told: list[bool] = []
        ob.on_backlog(told.append)
        ob.on_backlog(gov.hold)
        ob.add(readings(ob, int(MEMORY * HOLD_AT) - 1))
        before = list(told)
        ob.add(readings(ob, 1))  # the reading that crosses the mark: no commit, no governor step in between
        during = list(told)
        fast = PollSchedule("meter-1", pacing)
        polled = polls_in(fast, 0.01, 200)
        await ob.flush()
        await ob.close()
        return before, during + told[len(during) :], polled

    before, told, polled_while_held = asyncio.run(main())
    assert before == []
    assert told == [True, False]  # held at the mark, released by the commit
    assert polled_while_held == 200 // PollPacing.MAX_STRETCH  # the fastest points at once down to 1 in 20
    assert not pacing.held
    assert gov.status()["overloaded"] and gov.status()["commit_holds"] == 1


def test_a_hold_leaves_slower_points_alone():
    pacing = PollPacing()
    pacing.note(0.01)
    pacing.note(1.0)
    pacing.held = True
    schedule = PollSchedule("meter-1", pacing)
    assert polls_in(schedule, 1.0, 50) == 50  # slower than 20 x the fastest interval: untouched
    assert polls_in(schedule, 0.05, 400) == 100  # 5 x the fastest: a quarter of its slots


def test_the_governor_takes_over_from_a_hold_at_its_next_step():
    gov, pacing = governor()
    gov.hold(True)
    gov.hold(False)  # a commit caught up before the step
    # The load alone would not shed (the polls were held back meanwhile) ...
    gov.step(Measured(busy=0.5, cpu=0.5, lag=0.0, produced=1000, delivered=1000, pending=0.0, connected=True), TICK)
    # ... but the hold says the polls outran the commit: the floor rises as when saturated.
    assert pacing.floor == pytest.approx(0.01 * SHED_FAST)
    assert gov.status()["overloaded"]


def test_a_burst_is_committed_without_waiting_for_a_long_commit_interval(tmp_path):
    async def main() -> tuple[int, int]:
        ob = make_outbox(tmp_path, commit_interval=10)
        await ob.open()
        committed = asyncio.Event()
        task = asyncio.create_task(ob.run())
        await asyncio.sleep(0.2)  # the run loop's first (empty) flush is done: the next is 10 s away
        ob.on_commit(committed.set)
        ob.add(readings(ob, MEMORY // 5))  # 20 % of the buffer: past the commit mark, below the hold
        await asyncio.wait_for(committed.wait(), 8)
        n = ob.committed
        task.cancel()
        await ob.close()
        return n, int(ob.stats()["dropped"])

    committed, dropped = asyncio.run(main())
    assert committed == MEMORY // 5 and dropped == 0


def test_no_hold_below_the_mark(tmp_path):
    async def main() -> list[bool]:
        ob = make_outbox(tmp_path)
        await ob.open()
        told: list[bool] = []
        ob.on_backlog(told.append)
        for _ in range(10):
            ob.add(readings(ob, int(MEMORY * HOLD_AT) // 2))
            await ob.flush()
        await ob.close()
        return told

    assert asyncio.run(main()) == []
