"""Graceful overload: when the event loop has no time to spare, poll less, keep delivering.

Drivers, the outbox and the uplink share one event loop. A gateway configured
to poll more than its CPU can handle would otherwise fill that loop with poll
work; the uplink then gets ever fewer turns, and readings pile up in the
outbox until its cap drops the oldest. The governor keeps the loop from
saturating instead:

- Every TICK it measures the share of wall time the loop was busy (not
  waiting in select(), see agent.runtime.loop) and how late its timers fire.
- Above BUSY_HIGH it raises the poll floor of the shared PollPacing: no point
  is polled more often than once per floor seconds, so the fastest points are
  thinned first (drivers.base.SlotShedder skips whole slots, never bursts).
  Below BUSY_LOW it lowers the floor again in proportion to the headroom,
  down to 0 (every slot taken). In between it holds, so a gateway that is
  busy but coping is left alone.
- A loop that is busy because the uplink is catching up on a backlog (more
  delivered than produced) is not overloaded: polls are not shed for it.
- It logs once when shedding starts and once when the load has stayed
  normal for CALM seconds, and reports its state in the agent's status
  (`load`), with the slots skipped per device in each device's status.

The thresholds are properties of the event loop, not of a site, so they are
constants here rather than config.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from agent.runtime.loop import idle_clock
from drivers.base import PollPacing

TICK = 0.5  # seconds between control steps
PROBE = 0.1  # seconds between lag probes
BUSY_HIGH = 0.90  # loop busy share above which polls are shed
BUSY_LOW = 0.75  # ... below which shedding is eased
BUSY_TARGET = 0.80  # where easing aims: the uplink always finds the loop free
SHED_STEP = 1.25  # floor growth per tick while over: doubles in about 1.5 s
EASE_MAX = 1.5  # floor shrink per tick at most, however idle the loop
LAG_HIGH = 0.05  # without an idle clock: timers this late mean no time to spare ...
LAG_LOW = 0.01  # ... and this punctual mean there is
CALM = 5.0  # seconds at full rate before an overload counts as over
CATCHING_UP = 1.2  # delivered / produced (averaged over a few seconds) above which a busy loop is an uplink draining a backlog
RATE_SMOOTHING = 0.2  # weight of the newest tick in those averages (about 2.5 s)

# (readings committed so far, readings acknowledged by the broker so far)
DeliveryFigures = Callable[[], tuple[int, int]]


class LoadGovernor:
    def __init__(self, pacing: PollPacing, *, delivery: DeliveryFigures, log: logging.Logger) -> None:
        self.pacing = pacing
        self.delivery = delivery
        self.log = log
        self.busy: float | None = None
        self.lag = 0.0
        self.overloaded_since: float | None = None  # wall time
        self.episodes = 0
        self._calm_since: float | None = None
        self._skipped_at_start = 0
        self._produced = 0.0  # readings per tick, smoothed
        self._delivered = 0.0

    # -- the control loop ------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        clock = idle_clock(loop)
        probes_per_tick = round(TICK / PROBE)
        last_tick = loop.time()
        last_idle = clock.idle if clock else 0.0
        last_delivery = self.delivery()
        while True:
            lag = 0.0
            for _ in range(probes_per_tick):
                asked = loop.time()
                await asyncio.sleep(PROBE)
                lag = max(lag, loop.time() - asked - PROBE)
            now = loop.time()
            busy = None
            if clock is not None:
                busy = min(1.0, max(0.0, 1.0 - (clock.idle - last_idle) / max(now - last_tick, 1e-6)))
                last_idle = clock.idle
            last_tick = now
            figures = self.delivery()
            produced, delivered = figures[0] - last_delivery[0], figures[1] - last_delivery[1]
            last_delivery = figures
            self.step(busy, lag, produced, delivered, now)

    def step(self, busy: float | None, lag: float, produced: int, delivered: int, now: float) -> None:
        """One control step on one tick's measurements (`now` on the monotonic clock)."""
        self.lag = lag
        pacing = self.pacing
        if busy is not None:
            smoothed = busy if self.busy is None else 0.4 * self.busy + 0.6 * busy
            self.busy = smoothed
            over, under = smoothed > BUSY_HIGH, smoothed < BUSY_LOW
            # busy scales with the poll rate, and the poll rate with 1 / floor
            ease = min(EASE_MAX, BUSY_TARGET / max(smoothed, 0.01))
        else:
            over, under, ease = lag > LAG_HIGH, lag < LAG_LOW, SHED_STEP
        self._produced += RATE_SMOOTHING * (produced - self._produced)
        self._delivered += RATE_SMOOTHING * (delivered - self._delivered)
        catching_up = self._delivered > CATCHING_UP * self._produced and self._delivered > 0
        if over and not catching_up and pacing.fastest < float("inf"):
            floor = max(pacing.floor * SHED_STEP, pacing.fastest * SHED_STEP)
            pacing.floor = min(floor, pacing.slowest * pacing.MAX_STRETCH)
        elif under and pacing.floor > 0:
            floor = pacing.floor / ease
            pacing.floor = floor if floor > pacing.fastest else 0.0
        self._report(now)

    def _report(self, now: float) -> None:
        shedding = self.pacing.floor > 0
        if shedding:
            self._calm_since = None
            if self.overloaded_since is None:
                self.overloaded_since = time.time()
                self.episodes += 1
                self._skipped_at_start = self.pacing.skipped
                self.log.warning(
                    "gateway overloaded (event loop %stimers %.0f ms late): polling less often than configured so that "
                    "readings keep being delivered; lengthen poll intervals or move devices to another gateway",
                    "" if self.busy is None else f"{self.busy:.0%} busy, ",
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
            "busy": None if self.busy is None else round(self.busy, 3),
            "lag_ms": round(self.lag * 1000, 1),
            "poll_floor": round(self.pacing.floor, 4),
            "polls_skipped": self.pacing.skipped,
        }
