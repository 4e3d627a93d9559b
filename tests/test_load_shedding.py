"""Poll schedules under load shedding (drivers.base.PollSchedule) and the load governor's decisions.

The schedule is computed on explicit clock values, so these tests say exactly
which slots a point is polled in; the governor is driven step by step with
measurements as its run loop would hand them over.
"""

from __future__ import annotations

import logging

import pytest

from agent.runtime.overload import CALM, TICK, Delivery, LoadGovernor, Measured
from drivers.base import PollPacing, PollSchedule


def polled_slots(schedule: PollSchedule, interval: float, slots: int, *, key: str = "p", late: float = 0.0) -> list[int]:
    """Slot numbers a point is polled in over `slots` slots, each poll taking `late` seconds."""
    at, out = 0.0, []
    while at < slots * interval - 1e-9:
        out.append(round(at / interval))
        at = schedule.next_slot(key, at, interval, at + late)
    return out


def test_without_shedding_every_slot_is_taken_on_the_grid() -> None:
    schedule = PollSchedule("meter-1", PollPacing())
    assert polled_slots(schedule, 0.1, 50) == list(range(50))
    assert schedule.skipped == schedule.missed == 0


def test_a_late_poll_misses_slots_and_never_bursts() -> None:
    schedule = PollSchedule("meter-1", None)
    # each poll takes 2.5 intervals: the next poll is at the next slot after it ends
    assert polled_slots(schedule, 0.1, 30, late=0.25) == list(range(0, 30, 3))
    assert schedule.missed == 2 * 10


def test_a_floor_thins_fast_points_evenly_and_keeps_their_grid() -> None:
    pacing = PollPacing()
    pacing.floor = 0.4
    schedule = PollSchedule("meter-1", pacing)
    slots = polled_slots(schedule, 0.1, 400)
    assert {b - a for a, b in zip(slots, slots[1:], strict=False)} == {4}  # every 4th slot, no bunching
    assert schedule.skipped == pacing.skipped == 400 - len(slots)


def test_a_floor_leaves_slower_points_alone() -> None:
    pacing = PollPacing()
    pacing.floor = 0.4
    schedule = PollSchedule("meter-1", pacing)
    assert polled_slots(schedule, 1.0, 20, key="energy") == list(range(20))
    assert polled_slots(schedule, 0.4, 20, key="power") == list(range(20))
    assert schedule.skipped == 0


def test_uneven_shares_average_out_to_the_floor() -> None:
    pacing = PollPacing()
    pacing.floor = 0.25  # 2.5 slots of 0.1 s
    slots = polled_slots(PollSchedule("meter-1", pacing), 0.1, 1000)
    assert len(slots) == pytest.approx(400, abs=1)
    assert {b - a for a, b in zip(slots, slots[1:], strict=False)} == {2, 3}


def test_shedding_never_takes_more_than_max_stretch() -> None:
    pacing = PollPacing()
    pacing.floor = 1000.0
    slots = polled_slots(PollSchedule("meter-1", pacing), 0.1, 200)
    assert len(slots) == pytest.approx(200 / PollPacing.MAX_STRETCH, abs=1)


def test_devices_on_one_interval_do_not_all_poll_in_the_same_slots() -> None:
    pacing = PollPacing()
    pacing.floor = 1.0
    firsts = {polled_slots(PollSchedule(f"meter-{i}", pacing), 0.1, 30)[1] for i in range(20)}
    assert len(firsts) > 5


def test_shedding_ends_at_once_when_the_floor_drops() -> None:
    pacing = PollPacing()
    pacing.floor = 0.5
    schedule = PollSchedule("meter-1", pacing)
    at = schedule.next_slot("p", 0.0, 0.1, 0.0)
    assert at > 0.1  # a later slot
    pacing.floor = 0.0
    assert schedule.next_slot("p", at, 0.1, at) == pytest.approx(at + 0.1)


def measured(load: float, produced: int = 10_000, delivered: int = 10_000, pending: float = 0.0) -> Measured:
    return Measured(busy=load, cpu=0.3, lag=0.02, produced=produced, delivered=delivered, pending=pending, connected=True)


def governor() -> tuple[LoadGovernor, PollPacing]:
    pacing = PollPacing()
    pacing.note(0.01)
    pacing.note(1.0)
    return LoadGovernor(pacing, delivery=Delivery, log=logging.getLogger("test.load")), pacing


def test_governor_sheds_while_saturated_and_recovers_logging_once_each(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "test.load")
    gov, pacing = governor()
    now = 0.0
    for _ in range(8):
        now += TICK
        gov.step(measured(1.0), now)
    assert pacing.floor > 0.1 and gov.status()["overloaded"]
    assert pacing.floor <= 1.0 * PollPacing.MAX_STRETCH
    while pacing.floor > 0:
        now += TICK
        gov.step(measured(0.3), now)
    assert gov.status()["overloaded"]  # until the load has stayed normal for a while
    for _ in range(round(CALM / TICK) + 1):
        now += TICK
        gov.step(measured(0.3), now)
    status = gov.status()
    assert not status["overloaded"] and status["overload_episodes"] == 1 and status["poll_floor"] == 0
    messages = [r.getMessage() for r in caplog.records]
    assert sum("gateway overloaded" in m for m in messages) == 1
    assert sum("overload over" in m for m in messages) == 1


def test_governor_leaves_a_busy_but_coping_gateway_alone() -> None:
    gov, pacing = governor()
    for i in range(40):
        gov.step(measured(0.9), i * TICK)
    assert pacing.floor == 0 and not gov.status()["overloaded"]


def test_governor_does_not_shed_for_an_uplink_catching_up() -> None:
    gov, pacing = governor()
    for i in range(40):
        gov.step(measured(1.0, produced=5_000, delivered=20_000), i * TICK)
    assert pacing.floor == 0


def test_governor_sheds_when_delivery_falls_behind_on_a_busy_gateway() -> None:
    gov, pacing = governor()
    for i in range(40):
        gov.step(measured(0.9, produced=20_000, delivered=10_000), i * TICK)
    assert pacing.floor > 0.01 and gov.status()["overloaded"]
