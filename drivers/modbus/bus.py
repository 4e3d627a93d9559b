"""Modbus buses: one connection each, requests serialised, reconnect with backoff.

Registered in drivers.registry as `modbus_tcp`, `modbus_rtu` and
`modbus_rtu_over_tcp`. Devices (drivers.modbus.driver) share a bus and call
`request`; the bus holds the lock for one request/answer at a time, keeps the
RTU inter-frame gap, reconnects with capped backoff (logging once on failure
and once on recovery) and records the last raw frames.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, ClassVar

from drivers.base import Backoff, Bus
from drivers.modbus.transports import RTU, RTU_OVER_TCP, TCP

if TYPE_CHECKING:
    from drivers.config import BusConfig
    from drivers.modbus.adapter import ModbusClient
from drivers.modbus.errors import ModbusConnectionLost, ModbusError, ModbusExceptionResponse, ModbusTimeout
from drivers.modbus.recorder import FlightRecorder

SPIN_BELOW = 0.0015  # seconds of gap waited without yielding to the event loop
BITS_PER_CHAR = 11  # the spec counts 11 bits per RTU character whatever the parity


def rtu_gap(baudrate: int | None, minimum: float) -> float:
    """Silent interval before a frame: 3.5 characters, fixed at 1.75 ms above 19200 baud (spec 2.5.1.1)."""
    if not baudrate:
        return minimum
    t35 = 3.5 * BITS_PER_CHAR / baudrate if baudrate <= 19200 else 0.00175
    return max(minimum, t35)


class ModbusBus(Bus):
    """Base of the three bus types; subclasses only say how to build the client."""

    transport: ClassVar[str]

    def __init__(self, config: BusConfig, log: logging.Logger) -> None:
        super().__init__(config, log)
        self.recorder = FlightRecorder(getattr(config, "flight_recorder", 64))
        self.gap = rtu_gap(getattr(config, "baudrate", None) if self.transport != TCP else None, getattr(config, "min_gap", 0.0))
        self._lock = asyncio.Lock()
        self._client: ModbusClient | None = None
        self._backoff = Backoff(getattr(config, "reconnect_initial", 1.0), getattr(config, "reconnect_max", 30.0), 0.2)
        self._retry_at = 0.0
        self._last_io = 0.0
        self._timeouts_in_row = 0
        self.requests = 0
        self.failures = 0

    def _make_client(self) -> ModbusClient:
        raise NotImplementedError

    async def open(self) -> None:
        async with self._lock:
            try:
                await self._ensure()
            except ModbusConnectionLost:
                pass  # logged once by health; devices report offline until it opens

    async def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def _ensure(self) -> ModbusClient:
        if self._client is not None and self._client.connected:
            return self._client
        now = time.monotonic()
        if now < self._retry_at:
            raise ModbusConnectionLost(f"bus {self.config.name} is reconnecting (next try in {self._retry_at - now:.1f} s; {self.health.last_error})")
        if self._client is not None:
            self._client.close()
        client = self._make_client()
        try:
            await client.connect()
        except ModbusConnectionLost as exc:
            client.close()
            self._client = None
            self._retry_at = time.monotonic() + self._backoff.next_delay()
            self.recorder.note(f"connect failed: {exc}")
            self.health.failed("offline", f"{exc}; check the cable/host and the port setting")
            raise
        self._client = client
        self._backoff.reset()
        self._retry_at = 0.0
        self.recorder.note("connected")
        self.health.succeeded()
        return client

    def _drop(self, why: str) -> None:
        self.recorder.note(f"dropped connection: {why}")
        if self._client is not None:
            self._client.close()
            self._client = None

    async def _keep_gap(self) -> None:
        """Wait out the inter-frame gap since the last answer.

        The event loop's timers have millisecond granularity plus the
        scheduler's wake-up delay, which would double a 1.75 ms gap; the last
        stretch below SPIN_BELOW is therefore waited without yielding.
        """
        deadline = self._last_io + self.gap
        wait = deadline - time.monotonic()
        if wait > SPIN_BELOW:
            await asyncio.sleep(wait - SPIN_BELOW)
        while time.monotonic() < deadline:
            pass

    async def request(self, op: str, unit: int, address: int, arg: Any, timeout: float) -> Any:
        """Run one request: op is read_registers/read_bits (arg = (table, count)) or write_registers/write_coils (arg = values)."""
        async with self._lock:
            client = await self._ensure()
            client.set_timeout(timeout)
            await self._keep_gap()
            self.requests += 1
            try:
                if op in ("read_registers", "read_bits"):
                    table, count = arg
                    result = await getattr(client, op)(table, unit, address, count)
                else:
                    result = await getattr(client, op)(unit, address, arg)
            except ModbusExceptionResponse as exc:
                self._timeouts_in_row = 0
                self.recorder.note(f"unit {unit}: {exc}")
                raise
            except ModbusConnectionLost as exc:
                self.failures += 1
                self._drop(str(exc))
                self.health.failed("offline", str(exc))
                raise
            except ModbusTimeout as exc:
                self.failures += 1
                self.recorder.note(f"unit {unit}: {exc}")
                self._timeouts_in_row += 1
                limit = getattr(self.config, "reconnect_after_timeouts", 0)
                if limit and self._timeouts_in_row >= limit:
                    self._timeouts_in_row = 0
                    self._drop(f"{limit} timeouts in a row")
                raise
            except ModbusError as exc:
                self.failures += 1
                self.recorder.note(f"unit {unit}: {exc}")
                raise
            finally:
                self._last_io = time.monotonic()
            self._timeouts_in_row = 0
            return result

    def frames(self, last: int = 8) -> list[str]:
        """The last raw frames as text lines, for error reports."""
        return self.recorder.lines(last)

    def status(self) -> dict[str, Any]:
        return {
            **super().status(),
            "connected": bool(self._client and self._client.connected),
            "requests": self.requests,
            "failures": self.failures,
            "gap_ms": round(self.gap * 1000, 3),
            "flight_recorder": self.recorder.snapshot(),
        }


class ModbusTcpBus(ModbusBus):
    config_model = "drivers.modbus.config:ModbusTcpBusConfig"
    transport = TCP

    def _make_client(self) -> ModbusClient:
        c = self.config
        from drivers.modbus.adapter import ModbusClient  # pymodbus loads with the first Modbus bus only

        return ModbusClient(TCP, host=c.host, port=c.port, on_frame=self.recorder.frame)  # type: ignore[attr-defined]


class ModbusRtuBus(ModbusBus):
    config_model = "drivers.modbus.config:ModbusRtuBusConfig"
    transport = RTU

    def _make_client(self) -> ModbusClient:
        c = self.config
        from drivers.modbus.adapter import ModbusClient

        return ModbusClient(
            RTU,
            serial_port=c.port,
            baudrate=c.baudrate,
            parity=c.parity,
            bytesize=c.bytesize,
            stopbits=c.stopbits,
            on_frame=self.recorder.frame,  # type: ignore[attr-defined]
        )


class ModbusRtuOverTcpBus(ModbusBus):
    config_model = "drivers.modbus.config:ModbusRtuOverTcpBusConfig"
    transport = RTU_OVER_TCP

    def _make_client(self) -> ModbusClient:
        c = self.config
        from drivers.modbus.adapter import ModbusClient

        return ModbusClient(RTU_OVER_TCP, host=c.host, port=c.port, on_frame=self.recorder.frame)  # type: ignore[attr-defined]
