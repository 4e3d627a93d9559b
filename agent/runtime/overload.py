"""Graceful overload: when the gateway has no time to spare, poll less, keep delivering.

Drivers, the outbox and the uplink share one event loop, and every Python
thread of the agent (the outbox's SQLite worker, paho's network thread)
shares one interpreter lock. A gateway configured to poll more than its CPU
can handle would fill both with poll work: the commit and the uplink then get
ever fewer turns, readings pile up before the commit and in the outbox, and
the caps drop the oldest. The governor keeps the agent below saturation
instead, by thinning polls:

- Every TICK it measures the load: the larger of the share of wall time the
  loop was busy (not waiting in select(), see agent.runtime.loop) and the
  agent's CPU time as a share of one core (what the interpreter lock
  allows). It also notes how late its timers fire, and how many readings
  were committed and how many acknowledged by the broker.
- Above BUSY_HIGH, or above BUSY_LOW while delivery falls behind production
  on a connected uplink, it raises the poll floor of the shared PollPacing:
  no point is polled more often than once per floor seconds, so the fastest
  points are thinned first (drivers.base.PollSchedule skips whole slots and
  never bursts). The floor moves by load / BUSY_TARGET per tick, but doubles
  while the agent is saturated or readings wait for the commit in ever
  larger numbers: those are dropped at the outbox's memory cap within
  seconds, so the first seconds count.
- Between its steps the outbox may say that readings wait for the commit in
  numbers that would soon be dropped (agent.outbox.backlog): the governor
  then holds polls back at once (PollPacing.held) until a commit has caught
  up, and its next step counts the tick as saturated, so the floor it
  raises takes over from the hold. This covers the first fraction of a
  second of a sudden overload, and a commit slowed by the card.
- Below BUSY_LOW, with delivery keeping up, it lowers the floor again,
  gently, down to 0 (every slot taken). In between it holds, so a gateway
  that is busy but coping is left alone.
- A load that comes from the uplink catching up on a backlog (more delivered
  than produced) is not overload: polls are not shed for it.
- It logs once when shedding starts and once when the load has stayed
  normal for CALM seconds, and reports its state in the agent's status
  (`load`), with the slots skipped per device in each device's status.

The thresholds are properties of the agent, not of a site, so they are
constants here rather than config.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.runtime.loop import idle_clock
from drivers.base import PollPacing

TICK = 0.25  # seconds between control steps
PROBE = 0.05  # seconds between lag probes
SMOOTHING = 0.3  # weight of the newest tick in the load (about 1 s)
BUSY_HIGH = 0.95  # load above which polls are shed
BUSY_SATURATED = 0.985  # ... and shed fast
BUSY_LOW = 0.85  # load below which shedding is eased (and above which falling behind counts)
BUSY_TARGET = 0.90  # where both aim: the uplink and the outbox always find the agent free
SHED_MIN, SHED_FAST = 1.1, 2.0  # floor growth per tick while over; while saturated or piling up
PENDING_HIGH = 0.2  # share of the outbox's memory buffer waiting for a commit that counts as piling up
EASE_MAX = 1.1  # floor shrink per tick at most, however idle the loop: steps back gently
CALM = 5.0  # seconds at full rate before an overload counts as over
DELIVERY_SMOOTHING = 0.08  # weight of the newest tick in the delivery balance (about 3 s)
FALLING_BEHIND = 0.85  # delivered / produced below which delivery falls behind
CATCHING_UP = 1.2  # delivered / produced above which the load is the uplink draining a backlog


@dataclass
class Delivery:
    """What the outbox and the uplink say, cumulative counts as of now."""

    committed: int = 0  # readings committed to the outbox so far
    acknowledged: int = 0  # readings acknowledged by the broker so far
    pending: float = 0.0  # share of the outbox's memory buffer waiting for a commit
    connected: bool = False  # the uplink has a session


@dataclass
class Measured:
    """One tick's measurements."""

    busy: float | None  # share of the tick the loop was not waiting for I/O (None: no idle clock)
    cpu: float  # the agent's CPU time in the tick as a share of one core
    lag: float  # seconds the latest timer fired late, at most
    produced: int  # readings committed in the tick
    delivered: int  # readings acknowledged in the tick
    pending: float
    connected: bool


class LoadGovernor:
    def __init__(self, pacing: PollPacing, *, delivery: Callable[[], Delivery], log: logging.Logger) -> None:
        self.pacing = pacing
        self.delivery = delivery
        self.log = log
        self.load: float | None = None  # smoothed
        self.busy: float | None = None  # last tick's figures, for the status
        self.cpu = 0.0
        self.lag = 0.0
        self.overloaded_since: float | None = None  # wall time
        self.episodes = 0
        self._calm_since: float | None = None
        self._skipped_at_start = 0
        self._produced = 0.0  # readings per tick, smoothed
        self._delivered = 0.0
        self._produced_slow = 0.0
        self._delivered_slow = 0.0
        self._held_in_tick = False  # polls were held back for the commit since the last step
        self.holds = 0

    # -- from the outbox, between steps ------------------------------------------

    def hold(self, held: bool) -> None:
        """The outbox's commit is behind (True) or has caught up (False): see agent.outbox.backlog."""
        self.pacing.held = held
        if held:
            self._held_in_tick = True
            self.holds += 1
            self._report(time.monotonic())

    # -- the control loop ------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        clock = idle_clock(loop)
        probes_per_tick = round(TICK / PROBE)
        last_tick, last_cpu = loop.time(), time.process_time()
        last_idle = clock.idle if clock else 0.0
        last = self.delivery()
        while True:
            lag = 0.0
            for _ in range(probes_per_tick):
                asked = loop.time()
                await asyncio.sleep(PROBE)
                lag = max(lag, loop.time() - asked - PROBE)
            now, cpu = loop.time(), time.process_time()
            wall = max(now - last_tick, 1e-6)
            busy = None
            if clock is not None:
                busy = min(1.0, max(0.0, 1.0 - (clock.idle - last_idle) / wall))
                last_idle = clock.idle
            figures = self.delivery()
            self.step(
                Measured(
                    busy=busy,
                    cpu=(cpu - last_cpu) / wall,
                    lag=lag,
                    produced=figures.committed - last.committed,
                    delivered=figures.acknowledged - last.acknowledged,
                    pending=figures.pending,
                    connected=figures.connected,
                ),
                now,
            )
            last_tick, last_cpu, last = now, cpu, figures

    def step(self, m: Measured, now: float) -> None:
        """One control step on one tick's measurements (`now` on the monotonic clock)."""
        self.busy, self.cpu, self.lag = m.busy, m.cpu, m.lag
        # Wall-clock busy sees the CPU taken by other processes; CPU time sees
        # the agent's own threads, which wait for the same interpreter lock.
        load = min(1.0, max(m.busy or 0.0, m.cpu))
        smoothed = load if self.load is None else self.load + SMOOTHING * (load - self.load)
        self.load = smoothed
        self._produced += SMOOTHING * (m.produced - self._produced)
        self._delivered += SMOOTHING * (m.delivered - self._delivered)
        self._produced_slow += DELIVERY_SMOOTHING * (m.produced - self._produced_slow)
        self._delivered_slow += DELIVERY_SMOOTHING * (m.delivered - self._delivered_slow)
        catching_up = self._delivered > CATCHING_UP * self._produced and self._delivered > 0
        falling_behind = m.connected and self._delivered_slow < FALLING_BEHIND * self._produced_slow
        pacing = self.pacing
        # A hold means the commit could not keep up with the polls, whatever the load says.
        held, self._held_in_tick = self._held_in_tick or pacing.held, False
        over = held or ((smoothed > BUSY_HIGH or (smoothed > BUSY_LOW and falling_behind)) and not catching_up)
        if over and pacing.fastest < float("inf"):
            # The load scales with the poll rate, and the poll rate with 1 / floor.
            fast = held or smoothed > BUSY_SATURATED or m.pending > PENDING_HIGH
            shed = SHED_FAST if fast else max(SHED_MIN, smoothed / BUSY_TARGET)
            pacing.floor = min(max(pacing.floor, pacing.fastest) * shed, pacing.slowest * pacing.MAX_STRETCH)
        elif smoothed < BUSY_LOW and not falling_behind and pacing.floor > 0:
            floor = pacing.floor / min(EASE_MAX, BUSY_TARGET / max(smoothed, 0.01))
            pacing.floor = floor if floor > pacing.fastest else 0.0
        self._report(now)

    def _report(self, now: float) -> None:
        shedding = self.pacing.floor > 0 or self.pacing.held
        if shedding:
            self._calm_since = None
            if self.overloaded_since is None:
                self.overloaded_since = time.time()
                self.episodes += 1
                self._skipped_at_start = self.pacing.skipped
                self.log.warning(
                    "gateway overloaded (load %.0f%%, timers %.0f ms late): polling less often than configured so that "
                    "readings keep being delivered; lengthen poll intervals or move devices to another gateway",
                    100 * (self.load or 0.0),
                    self.lag * 1000,
                )
            return
        if self.overloaded_since is None:
            return
        if self._calm_since is None:
            self._calm_since = now
        elif now - self._calm_since >= CALM:
            self.log.info(
                "overload over after %.0f s: polling at the configured rates again (%d polls skipped meanwhile)",
                time.time() - self.overloaded_since,
                self.pacing.skipped - self._skipped_at_start,
            )
            self.overloaded_since = None
            self._calm_since = None

    # -- for the status ----------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {
            "overloaded": self.overloaded_since is not None,
            "overloaded_since": self.overloaded_since,
            "overload_episodes": self.episodes,
            "load": None if self.load is None else round(self.load, 3),
            "loop_busy": None if self.busy is None else round(self.busy, 3),
            "cpu": round(self.cpu, 3),
            "lag_ms": round(self.lag * 1000, 1),
            "poll_floor": round(self.pacing.floor, 4),
            "polls_skipped": self.pacing.skipped,
            "commit_holds": self.holds,
        }
