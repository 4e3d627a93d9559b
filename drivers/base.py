"""The driver interface: what every device driver and bus implements.

A *bus* is a connection (a serial port, a TCP endpoint) shared by the devices on
it; it serialises access. A *device* is one addressable thing on a bus (or on
none, like the gateway's own health). Drivers declare their own pydantic config
models in a config module of their own (base models in drivers.config);
agent.config composes them into the gateway schema through drivers.registry,
so a new driver never edits the central schema. The runtime classes here are
handed the validated config as plain attributes and never import pydantic.

Drivers import nothing from agent/ but agent.readings; the runtime hands them
a DriverContext for stamping and emitting readings.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
import zlib
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, ClassVar

from agent.readings import OK, Reading, Value

if TYPE_CHECKING:
    # the config models live apart: the running agent gets plain validated
    # objects and never loads the validation library (drivers.config)
    from drivers.config import BusConfig, DeviceConfig, FailurePolicy


class Backoff:
    """Capped exponential backoff with jitter, on the monotonic clock."""

    def __init__(self, initial: float, maximum: float, jitter: float = 0.2, *, rng: random.Random | None = None) -> None:
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self.failures = 0
        self._rng = rng or random.Random()

    @classmethod
    def from_policy(cls, policy: FailurePolicy) -> Backoff:
        return cls(policy.backoff_initial, policy.backoff_max, policy.backoff_jitter)

    def next_delay(self) -> float:
        base = min(self.maximum, self.initial * (2 ** min(self.failures, 30)))
        self.failures += 1
        spread = base * self.jitter
        return max(0.0, min(self.maximum, base + self._rng.uniform(-spread, spread)))

    def reset(self) -> None:
        self.failures = 0


class DeviceHealth:
    """Online state, last error and error counts of one device or bus.

    Logs a failure once when it starts and once when it recovers, not on every
    poll: a silent meter on RS-485 must not flood the journal.
    """

    def __init__(self, name: str, log: logging.Logger) -> None:
        self.name = name
        self.log = log
        self.online = False
        self.last_ok_wall: float | None = None
        self.last_error: str | None = None
        self.last_error_wall: float | None = None
        self.error_counts: dict[str, int] = {}
        self.polls = 0
        self._failing = False

    def succeeded(self) -> None:
        self.polls += 1
        self.online = True
        self.last_ok_wall = time.time()
        if self._failing:
            self.log.info("%s recovered", self.name)
            self._failing = False

    def failed(self, kind: str, detail: str) -> None:
        self.polls += 1
        self.online = False
        self.error_counts[kind] = self.error_counts.get(kind, 0) + 1
        self.last_error = f"{kind}: {detail}" if detail else kind
        self.last_error_wall = time.time()
        if not self._failing:
            self.log.warning("%s failing: %s", self.name, self.last_error)
            self._failing = True

    def snapshot(self) -> dict[str, Any]:
        return {
            "online": self.online,
            "last_ok": self.last_ok_wall,
            "last_error": self.last_error,
            "last_error_at": self.last_error_wall,
            "error_counts": dict(self.error_counts),
            "polls": self.polls,
        }


class PollPacing:
    """How often any point may be polled while the gateway sheds load; shared by all drivers.

    The runtime's load governor (agent.runtime.overload) sets `floor`: while
    the gateway has no time to spare, no point is polled more often than
    once per `floor` seconds (0: no shedding, every slot is taken). A floor
    thins the fastest points first and leaves slower ones alone, so a meter
    read every 10 s keeps its schedule while 25 ms points give way. Drivers
    report the intervals they poll at (`note`), so the governor knows where
    a floor starts to bite.

    `held` is set while readings wait for the outbox's commit in numbers
    that would soon be dropped: until the commit has caught up the fastest
    points take only 1 in MAX_STRETCH of their slots, at once, whatever the
    floor (points slower than that are left alone). The governor's steps
    come every 0.25 s; a buffer can fill faster than that.
    """

    # A point keeps at least 1 of this many of its slots however hard the
    # governor sheds: shedding thins a schedule, it never stops one.
    MAX_STRETCH = 20

    def __init__(self) -> None:
        self.floor = 0.0
        self.held = False
        self.fastest = math.inf
        self.slowest = 0.0
        self.skipped = 0  # every driver's skipped slots, for the gateway's status

    def limit(self) -> float:
        """The floor in force: the governor's, raised while held."""
        if self.held and self.fastest < math.inf:
            return max(self.floor, self.fastest * self.MAX_STRETCH)
        return self.floor

    def note(self, interval: float) -> None:
        self.fastest = min(self.fastest, interval)
        self.slowest = max(self.slowest, interval)


class PollSchedule:
    """One driver's fixed-rate schedule: the next slot to poll each point (or the device) at.

    Slots lie on each point's own grid. A slot that went by while the
    previous poll (or the event loop) was late is missed, not made up later:
    polls never burst. While the runtime sheds load, a point whose interval
    is below the floor takes only `interval / floor` of its slots, spread
    evenly by a credit that grows by that share with every slot that goes by
    (the point is polled at the first slot where it reaches 1). The skipped
    slots are jumped over, so shedding costs no wake-ups. The credit starts at
    a phase drawn from the device name, so devices on the same interval do
    not all poll in the same slots.
    """

    def __init__(self, device: str, pacing: PollPacing | None) -> None:
        self.pacing = pacing
        self.skipped = 0  # slots left out to shed load
        self.missed = 0  # slots that went by while the previous poll (or the event loop) was late
        self._phase = zlib.crc32(device.encode()) / 2**32
        self._credit: dict[Hashable, float] = {}

    def note(self, interval: float) -> None:
        if self.pacing is not None:
            self.pacing.note(interval)

    def next_slot(self, key: Hashable, slot: float, interval: float, now: float) -> float:
        """When to poll `key` (a point, or the whole device) next, after polling it in `slot`."""
        slot += interval
        passed = 1
        if slot < now:
            late = int((now - slot) // interval) + 1
            slot += late * interval
            passed += late
            self.missed += late
        pacing = self.pacing
        floor = 0.0 if pacing is None else pacing.limit()
        if pacing is None or floor <= interval:
            if self._credit:
                self._credit.clear()  # the next shedding episode starts at the device's phase again
            return slot
        share = max(interval / floor, 1.0 / pacing.MAX_STRETCH)
        credit = self._credit.get(key, self._phase) + passed * share
        if credit < 1.0:
            skip = math.ceil((1.0 - credit) / share - 1e-9)
            slot += skip * interval
            credit += skip * share
            self.skipped += skip
            pacing.skipped += skip
        self._credit[key] = credit - math.floor(credit)  # credit beyond one poll is forfeited: no catching up
        return slot


class DriverContext:
    """What the runtime gives a driver: stamping, emitting, logging, the clock, the poll pacing."""

    def __init__(
        self,
        device: str,
        *,
        stamp: Callable[..., Reading],
        emit: Callable[[list[Reading]], None],
        log: logging.Logger,
        mark_clock_synced: Callable[[], None] = lambda: None,
        data_dir: str = ".",
        pacing: PollPacing | None = None,
    ) -> None:
        self.device = device
        self._stamp = stamp
        self.emit = emit
        self.log = log
        self.mark_clock_synced = mark_clock_synced
        self.data_dir = data_dir
        self.pacing = pacing

    def reading(self, metric: str, value: Value, unit: str = "", *, status: str = OK, detail: str = "") -> Reading:
        return self._stamp(self.device, metric, value, unit, status=status, detail=detail)


class Bus:
    """A shared connection. Subclasses serialise access (one request at a time)."""

    # "module:Class" of its BusConfig model, imported by the config validator only
    config_model: ClassVar[str]
    # How many devices may share this bus (None: no limit). A serial port
    # carrying a streaming sensor cannot be shared, an RS-485 line can.
    max_devices: ClassVar[int | None] = None

    def __init__(self, config: BusConfig, log: logging.Logger) -> None:
        self.config = config
        self.log = log
        self.health = DeviceHealth(f"bus {config.name}", log)

    async def open(self) -> None:
        """Open lazily; drivers call their own reconnect logic through the bus."""

    async def close(self) -> None:
        """Release the port or socket."""

    def status(self) -> dict[str, Any]:
        return {"name": self.config.name, "type": self.config.type, **self.health.snapshot()}


class Driver:
    """A device driver. `run` is supervised by the runtime: it runs until
    cancelled; an exception out of it is logged and the driver restarted with
    backoff, but a well-behaved driver turns device faults into reading status
    and health state instead of raising.
    """

    # "module:Class" of its DeviceConfig model, imported by the config validator only
    config_model: ClassVar[str]
    # Bus types this driver can sit on; empty means it needs no bus.
    bus_types: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: DeviceConfig, bus: Bus | None, ctx: DriverContext) -> None:
        self.config = config
        self.bus = bus
        self.ctx = ctx
        self.health = DeviceHealth(f"device {config.name}", ctx.log)
        self.last_readings: dict[str, Reading] = {}
        self.schedule = PollSchedule(config.name, ctx.pacing)

    async def run(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        """Release what the driver holds (the bus is closed by the runtime)."""

    def publish(self, readings: list[Reading]) -> None:
        """Emit readings and remember the latest per metric for diagnostics."""
        for r in readings:
            self.last_readings[r.metric] = r
        if readings:
            self.ctx.emit(readings)

    def status(self) -> dict[str, Any]:
        return {
            "name": self.config.name,
            "driver": self.config.driver,
            "bus": getattr(self.config, "bus", None),
            **self.health.snapshot(),
            "polls_skipped": self.schedule.skipped,
            "polls_missed": self.schedule.missed,
            "last_readings": {m: {"value": r.value, "unit": r.unit, "status": r.status, "wall": r.wall} for m, r in self.last_readings.items()},
        }

    def describe(self) -> dict[str, Any]:
        """What the birth message says about this device (no secrets)."""
        return {"name": self.config.name, "driver": self.config.driver}

    async def read_point(self, point: str) -> Reading:
        raise NotImplementedError(f"driver {self.config.driver} cannot read single points")

    async def write_point(self, point: str, value: Value) -> None:
        raise NotImplementedError(f"driver {self.config.driver} does not support writes")


class PolledDriver(Driver):
    """A driver polled every `poll_interval` seconds on the monotonic clock.

    A failed poll (an exception out of `poll`) marks the device offline and
    waits with capped, jittered backoff before the next try; readings with a
    non-OK status are normal results, not failures. While the runtime sheds
    load, some slots are skipped (PollSchedule); the others keep their times.
    """

    async def poll(self) -> list[Reading]:
        raise NotImplementedError

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.config.poll_interval
        backoff = Backoff.from_policy(self.config.failure)
        self.schedule.note(interval)
        next_at = loop.time()
        while True:
            polls_before = self.health.polls
            try:
                readings = await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a device fault must not kill the loop
                self.health.failed(type(exc).__name__, str(exc))
                await asyncio.sleep(max(backoff.next_delay(), interval))
                next_at = loop.time()
                continue
            if self.health.polls == polls_before:
                # poll() did not record a failure of its own (e.g. a timeout
                # turned into readings with a status), so the device answered
                self.health.succeeded()
            if self.health.online:
                backoff.reset()
            self.publish(readings)
            # Fixed-rate schedule: a slow poll does not shift later ones, and a
            # poll that overran skips the missed slots instead of bursting.
            now = loop.time()
            next_at = self.schedule.next_slot(None, next_at, interval, now)
            await asyncio.sleep(next_at - now)
