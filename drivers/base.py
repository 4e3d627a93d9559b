"""The driver interface: what every device driver and bus implements.

A *bus* is a connection (a serial port, a TCP endpoint) shared by the devices on
it; it serialises access. A *device* is one addressable thing on a bus (or on
none, like the gateway's own health). Drivers declare their own pydantic config
models; agent.config composes them into the gateway schema through
drivers.registry, so a new driver never edits the central schema.

Drivers import nothing from agent/ but agent.readings; the runtime hands them
a DriverContext for stamping and emitting readings.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from agent.readings import OK, Reading, Value

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors, never dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class FailurePolicy(StrictModel):
    """How a device (or bus) is retried. Values are used as given, never clamped."""

    timeout: float = Field(1.0, gt=0, description="Seconds to wait for one answer.")
    retries: int = Field(1, ge=0, le=10, description="Extra attempts of a failed request within one poll.")
    backoff_initial: float = Field(1.0, gt=0, description="First wait in seconds after a failed poll before trying the device again.")
    backoff_max: float = Field(60.0, gt=0, description="Cap of the exponential backoff, in seconds.")
    backoff_jitter: float = Field(0.2, ge=0, le=1, description="Random share added to or taken from each wait, so devices and gateways do not retry in lockstep.")


class BusConfig(StrictModel):
    name: str = Field(pattern=NAME_PATTERN, description="Name the devices use to refer to this bus.")
    type: str


class DeviceConfig(StrictModel):
    name: str = Field(pattern=NAME_PATTERN, description="Device name, unique on the gateway; part of the MQTT topic.")
    driver: str
    enabled: bool = Field(True, description="A disabled device is validated but not polled.")
    poll_interval: float = Field(10.0, gt=0, description="Seconds between polls.")
    failure: FailurePolicy = Field(default_factory=FailurePolicy)  # type: ignore[arg-type]


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


class DriverContext:
    """What the runtime gives a driver: stamping, emitting, logging, the clock."""

    def __init__(
        self,
        device: str,
        *,
        stamp: Callable[..., Reading],
        emit: Callable[[list[Reading]], None],
        log: logging.Logger,
        mark_clock_synced: Callable[[], None] = lambda: None,
        data_dir: str = ".",
    ) -> None:
        self.device = device
        self._stamp = stamp
        self.emit = emit
        self.log = log
        self.mark_clock_synced = mark_clock_synced
        self.data_dir = data_dir

    def reading(self, metric: str, value: Value, unit: str = "", *, status: str = OK, detail: str = "") -> Reading:
        return self._stamp(self.device, metric, value, unit, status=status, detail=detail)


class Bus:
    """A shared connection. Subclasses serialise access (one request at a time)."""

    Config: ClassVar[type[BusConfig]]
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

    Config: ClassVar[type[DeviceConfig]]
    # Bus types this driver can sit on; empty means it needs no bus.
    bus_types: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: DeviceConfig, bus: Bus | None, ctx: DriverContext) -> None:
        self.config = config
        self.bus = bus
        self.ctx = ctx
        self.health = DeviceHealth(f"device {config.name}", ctx.log)
        self.last_readings: dict[str, Reading] = {}

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
    non-OK status are normal results, not failures.
    """

    async def poll(self) -> list[Reading]:
        raise NotImplementedError

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.config.poll_interval
        backoff = Backoff.from_policy(self.config.failure)
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
            next_at += interval
            now = loop.time()
            if next_at < now:
                next_at = now + interval - ((now - next_at) % interval)
            await asyncio.sleep(next_at - now)
