"""Base of drivers for sensors that stream frames on their own serial port.

Streaming sensors are not polled: they talk when they like. The driver runs a
PortReader, turns each decoded frame into metric values and publishes them
either per frame (report_interval = 0) or aggregated over report_interval
seconds (mean, median or latest, per driver). A one-second housekeeping tick
notices silence: a port that is gone publishes OFFLINE, a port that is open
but without good frames publishes TIMEOUT or BAD_FRAME (when only broken
frames arrived), once per outage, and DeviceHealth logs once on failure and
once on recovery. Frame errors are counted by class in the device health.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import TYPE_CHECKING, Any, ClassVar

from agent.readings import BAD_FRAME, OFFLINE, TIMEOUT, Reading
from drivers.base import Driver, DriverContext
from drivers.codecs.scanning import FRAME, GARBAGE
from drivers.serial.bus import SerialBus
from drivers.serial.reader import Events, PortReader

if TYPE_CHECKING:
    from drivers.serial.config import StreamingSensorConfig

MEAN = "mean"
MEDIAN = "median"
LATEST = "latest"


class StreamingSensorDriver(Driver):
    """Subclasses set `scan` and `aggregate`, and implement `frame_values` and `make_readings`."""

    bus_types: ClassVar[tuple[str, ...]] = ("serial",)
    aggregate: ClassVar[str] = MEAN
    # Metrics reported when the sensor is silent or the port is gone.
    metrics: ClassVar[tuple[tuple[str, str], ...]] = ()
    tick: ClassVar[float] = 1.0

    def __init__(self, config: StreamingSensorConfig, bus: SerialBus | None, ctx: DriverContext) -> None:
        super().__init__(config, bus, ctx)
        self.config: StreamingSensorConfig = config
        if not isinstance(bus, SerialBus):
            raise TypeError(f"device {config.name}: driver {config.driver} needs a bus of type 'serial'")
        self.reader = PortReader(
            f"device {config.name} on {bus.config.port}",
            bus.open_port,
            self.scan_stream,
            self.handle_events,
            config.failure,
            ctx.log,
            recorder_size=config.recorder_chunks,
            port_health=bus.health,
        )
        bus.reader = self.reader
        self._window: dict[str, list[float]] = {}
        self._window_start = time.monotonic()
        self._last_good: float | None = None
        self._errors_since_good = 0
        self._silent_status: str | None = None
        self._run_started = time.monotonic()
        self.checks = 0  # housekeeping ticks run, for diagnostics and tests

    # -- what subclasses provide -------------------------------------------------

    def scan_stream(self, buf: bytes) -> tuple[Events, bytes]:
        raise NotImplementedError

    def frame_values(self, frame: dict[str, Any]) -> dict[str, float] | None:
        """Metric values carried by one decoded frame; None for frames to ignore."""
        raise NotImplementedError

    def make_readings(self, values: dict[str, float]) -> list[Reading]:
        raise NotImplementedError

    # -- the stream -------------------------------------------------------------------

    async def run(self) -> None:
        self._run_started = time.monotonic()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.reader.run(), name=f"{self.config.name}-reader")
            tg.create_task(self._housekeeping(), name=f"{self.config.name}-tick")

    def handle_events(self, events: Events) -> None:
        for kind, data in events:
            if kind == FRAME:
                values = self.frame_values(data)
                if values is not None:
                    self._good(values)
                continue
            if kind != GARBAGE:
                # Noise between frames is normal on a serial line; broken frames are not.
                self._errors_since_good += 1
            self.health.error_counts[kind] = self.health.error_counts.get(kind, 0) + 1
            self.health.last_error = f"{kind}: {data}"
            self.health.last_error_wall = time.time()

    def _good(self, values: dict[str, float]) -> None:
        self._last_good = time.monotonic()
        self._errors_since_good = 0
        self._silent_status = None
        self.health.succeeded()
        if self.config.report_interval == 0:
            self.publish(self.make_readings(values))
            return
        for metric, value in values.items():
            self._window.setdefault(metric, []).append(value)

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(min(self.tick, self.config.report_interval or self.tick))
            self.check()

    def check(self) -> None:
        """Flush a finished aggregation window and detect silence."""
        self.checks += 1
        now = time.monotonic()
        interval = self.config.report_interval
        if interval and now - self._window_start >= interval:
            self.flush_window()
        since = now - (self._last_good if self._last_good is not None else self._run_started)
        if since < self.config.stale_after:
            return
        if self.reader.state != "open":
            status, detail = OFFLINE, f"port {self.reader.last_error or 'not open yet'}"
        elif self._errors_since_good:
            status, detail = BAD_FRAME, f"{self._errors_since_good} broken frames and no good one in {since:.0f} s"
        else:
            status, detail = TIMEOUT, f"port open but no frame in {since:.0f} s: check the sensor's power and TX wire"
        if status != self._silent_status:
            self._silent_status = status
            self.health.failed(status, detail)
            self.publish([self.ctx.reading(metric, None, unit, status=status, detail=detail) for metric, unit in self.metrics])

    def flush_window(self) -> None:
        """Publish what the current aggregation window holds and start a new one."""
        self._window_start = time.monotonic()
        window, self._window = self._window, {}
        if window:
            self.publish(self.make_readings(self._aggregate(window)))

    async def close(self) -> None:
        # Do not lose the last partial window on shutdown.
        self.flush_window()

    def _aggregate(self, window: dict[str, list[float]]) -> dict[str, float]:
        if self.aggregate == LATEST:
            return {m: v[-1] for m, v in window.items()}
        if self.aggregate == MEDIAN:
            return {m: statistics.median(v) for m, v in window.items()}
        return {m: sum(v) / len(v) for m, v in window.items()}

    # -- diagnostics --------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {
            **super().status(),
            "serial": self.reader.stats(),
            "silent": self._silent_status,
            "flight_recorder": self.reader.recorder.snapshot(),
        }

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "metrics": [m for m, _ in self.metrics],
            "report_interval": self.config.report_interval,
        }

    def flight_recorder(self) -> list[dict[str, Any]]:
        return self.reader.recorder.snapshot()
