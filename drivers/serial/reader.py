"""Async reader of one serial port feeding a stream codec.

The port is opened non-blocking and watched with loop.add_reader, so reading
never blocks the event loop and costs nothing while the line is quiet. Every
chunk goes into a small flight recorder and through the codec's `scan`;
decoded frames and classified errors are handed to the owner in stream order.
When the adapter disappears (read error, hang-up) the port is closed and
re-opened with the device's FailurePolicy backoff, by path, so an adapter
plugged back in is picked up without restarting the agent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import serial

from drivers.base import Backoff, DeviceHealth
from drivers.codecs.scanning import FRAME

if TYPE_CHECKING:
    from drivers.config import FailurePolicy

Events = list[tuple[str, Any]]

READ_SIZE = 4096


class FlightRecorder:
    """The last N raw chunks read, with times, for diagnostics bundles."""

    def __init__(self, size: int) -> None:
        self._ring: deque[tuple[float, bytes]] = deque(maxlen=max(1, size))
        self.enabled = size > 0

    def add(self, data: bytes) -> None:
        if self.enabled:
            self._ring.append((time.time(), data))

    def note(self, text: str) -> None:
        if self.enabled:
            self._ring.append((time.time(), ("-- " + text).encode()))

    def snapshot(self) -> list[dict[str, Any]]:
        return [{"wall": wall, "hex": data.hex(" ")} for wall, data in self._ring]


class PortReader:
    """Reads `open_port()` until cancelled; calls `on_events(events)` per chunk.

    `state` is "opening", "open" or "offline"; `counts` holds frames and
    errors by class, `opens` how many times the port was opened.
    """

    def __init__(
        self,
        name: str,
        open_port: Callable[[], serial.Serial],
        scan: Callable[[bytes], tuple[Events, bytes]],
        on_events: Callable[[Events], None],
        policy: FailurePolicy,
        log: logging.Logger,
        *,
        recorder_size: int = 32,
        port_health: DeviceHealth | None = None,
    ) -> None:
        self.name = name
        self._open_port = open_port
        self._scan = scan
        self._on_events = on_events
        self._policy = policy
        self.log = log
        self.recorder = FlightRecorder(recorder_size)
        self.port_health = port_health
        self.state = "opening"
        self.last_error = ""
        self.counts: dict[str, int] = {}
        self.bytes_read = 0
        self.opens = 0
        self.last_data_mono: float | None = None
        self._pending = b""
        self._logged_offline = False

    async def run(self) -> None:
        backoff = Backoff.from_policy(self._policy)
        while True:
            try:
                port = self._open_port()
            except (serial.SerialException, OSError, ValueError) as exc:
                self._offline(f"cannot open: {exc}")
                await asyncio.sleep(backoff.next_delay())
                continue
            self.opens += 1
            self.state = "open"
            self._pending = b""  # a frame cut by the unplug never completes
            self.recorder.note(f"opened (#{self.opens})")
            if self._logged_offline:
                self.log.info("%s: port open again", self.name)
                self._logged_offline = False
            if self.port_health is not None:
                self.port_health.succeeded()
            bytes_before = self.bytes_read
            try:
                reason = await self._pump(port)
            finally:
                try:
                    port.close()
                except (serial.SerialException, OSError):
                    pass
            self._offline(reason)
            if self.bytes_read > bytes_before:
                # It was working: retry soon, then back off if it keeps failing.
                backoff.reset()
            await asyncio.sleep(backoff.next_delay())

    def _offline(self, reason: str) -> None:
        self.state = "offline"
        self.last_error = reason
        self.recorder.note(reason)
        if self.port_health is not None:
            self.port_health.failed("offline", reason)
        if not self._logged_offline:
            # Once per outage: an unplugged adapter must not flood the journal.
            self.log.warning(
                "%s: %s; retrying with backoff (check the cable and that the port path exists, e.g. under /dev/serial/by-id/)",
                self.name,
                reason,
            )
            self._logged_offline = True

    async def _pump(self, port: serial.Serial) -> str:
        """Read until the port fails; return why."""
        loop = asyncio.get_running_loop()
        lost: asyncio.Future[str] = loop.create_future()
        fd = port.fileno()

        def readable() -> None:
            try:
                data = port.read(READ_SIZE)
            except (serial.SerialException, OSError) as exc:
                loop.remove_reader(fd)
                if not lost.done():
                    lost.set_result(f"port lost: {exc}")
                return
            if data:
                self.feed(data)

        loop.add_reader(fd, readable)
        try:
            return await lost
        finally:
            loop.remove_reader(fd)

    def feed(self, data: bytes) -> None:
        """Scan one chunk; exposed so the codec path can be driven without a port."""
        self.bytes_read += len(data)
        self.last_data_mono = time.monotonic()
        self.recorder.add(data)
        events, self._pending = self._scan(self._pending + data)
        for kind, _ in events:
            self.counts[kind] = self.counts.get(kind, 0) + 1
        if events:
            self._on_events(events)

    def stats(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "last_error": self.last_error,
            "opens": self.opens,
            "bytes": self.bytes_read,
            "frames": self.counts.get(FRAME, 0),
            "errors": {k: v for k, v in self.counts.items() if k != FRAME},
        }
