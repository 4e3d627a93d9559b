"""The only module that talks to pymodbus client APIs.

pymodbus changes its client API across minor releases (`slave=` became
`device_id=` in 3.10, result and exception classes moved), so everything else
in the agent calls this thin adapter and sees only drivers.modbus.errors.

pymodbus' own retry and reconnect machinery is switched off: the bus decides
when to reconnect (with backoff) and the driver decides when to retry, so one
silent device on a shared line cannot make pymodbus close the connection for
the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from drivers.codecs.modbus_crc import check_rtu_frame, rtu_response_length
from drivers.modbus.errors import (
    ModbusBadFrame,
    ModbusConnectionLost,
    ModbusError,
    ModbusExceptionResponse,
    ModbusTimeout,
)

# pymodbus logs every unanswered request at ERROR; a missing meter polled
# every 10 s would flood the journal. The bus and driver log failures once.
_pymodbus_log = logging.getLogger("pymodbus.logging")
if _pymodbus_log.level == logging.NOTSET:
    _pymodbus_log.setLevel(logging.CRITICAL)

from drivers.modbus.transports import RTU, RTU_OVER_TCP, TCP  # noqa: E402

# Called once per transaction and direction: (sending, raw bytes).
FrameHook = Callable[[bool, bytes], None]


class ModbusClient:
    """One connection (socket or serial port) and the requests on it.

    Not safe for concurrent requests: the owning bus holds a lock.
    """

    def __init__(
        self,
        transport: str,
        *,
        host: str = "",
        port: int = 502,
        serial_port: str = "",
        baudrate: int = 9600,
        parity: str = "N",
        bytesize: int = 8,
        stopbits: int = 1,
        timeout: float = 1.0,
        on_frame: FrameHook | None = None,
    ) -> None:
        self.transport = transport
        self._on_frame = on_frame
        self._rx = bytearray()
        self._lost: asyncio.Event | None = None
        common = {"timeout": timeout, "retries": 0, "reconnect_delay": 0, "trace_packet": self._trace, "trace_connect": self._connection_changed}
        if transport == TCP:
            self._client = AsyncModbusTcpClient(host, port=port, framer=FramerType.SOCKET, **common)
        elif transport == RTU_OVER_TCP:
            self._client = AsyncModbusTcpClient(host, port=port, framer=FramerType.RTU, **common)
        elif transport == RTU:
            self._client = AsyncModbusSerialClient(
                serial_port, framer=FramerType.RTU, baudrate=baudrate, parity=parity, bytesize=bytesize, stopbits=stopbits, **common
            )
        else:
            raise ValueError(f"unknown Modbus transport {transport!r}")
        # Otherwise pymodbus drops a TCP connection after retries+3 unanswered
        # requests, which on an RTU-over-TCP gateway means one missing meter
        # disconnects every other device behind it.
        self._client.set_max_no_responses(1 << 30)
        self._timeout = timeout

    @property
    def connected(self) -> bool:
        return bool(self._client.connected)

    def _connection_changed(self, connected: bool) -> None:
        if self._lost is not None and not connected:
            self._lost.set()

    async def connect(self) -> None:
        self._lost = asyncio.Event()
        try:
            ok = await self._client.connect()
        except (OSError, ModbusException) as exc:  # serial open errors surface as OSError
            raise ModbusConnectionLost(str(exc)) from exc
        if not ok:
            raise ModbusConnectionLost(f"cannot connect to {self._where()}")

    def close(self) -> None:
        self._client.close()

    def set_timeout(self, seconds: float) -> None:
        # pymodbus keeps one timeout for connecting and answering, fixed at
        # construction; devices on one bus may need different ones.
        if seconds != self._timeout:
            # (the transaction manager holds its own copy of the parameters)
            self._client.ctx.comm_params.timeout_connect = seconds
            self._timeout = seconds

    def _where(self) -> str:
        p = self._client.ctx.comm_params
        return f"{p.host}:{p.port}" if self.transport != RTU else str(p.host)

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if sending:
            if self._on_frame:
                self._on_frame(True, bytes(data))
        else:
            self._rx += data
        return data

    def _flush_rx(self) -> bytes:
        rx = bytes(self._rx)
        self._rx.clear()
        if rx and self._on_frame:
            self._on_frame(False, rx)
        return rx

    async def _execute(self, unit: int, call: Callable[[], object]) -> object:
        self._rx.clear()
        if not self.connected:
            raise ModbusConnectionLost(f"not connected to {self._where()}")
        try:
            response = await self._unless_lost(call())  # type: ignore[arg-type]
        except ConnectionException as exc:
            self._flush_rx()
            raise ModbusConnectionLost(str(exc)) from exc
        except (TimeoutError, ModbusIOException) as exc:
            rx = self._flush_rx()
            if not self.connected:
                raise ModbusConnectionLost(f"connection to {self._where()} closed during the request") from exc
            if rx:
                raise self._explain_bad(unit, rx) from exc
            raise ModbusTimeout(f"no answer from unit {unit} within {self._timeout:g} s") from exc
        except ModbusException as exc:
            self._flush_rx()
            raise ModbusError(str(exc)) from exc
        except OSError as exc:  # a USB adapter unplugged mid-request
            self._flush_rx()
            raise ModbusConnectionLost(f"{self._where()}: {exc}") from exc
        self._flush_rx()
        if response.isError():  # type: ignore[attr-defined]
            raise ModbusExceptionResponse(int(getattr(response, "exception_code", 0)))
        return response

    async def _unless_lost(self, coro: Awaitable[object]) -> object:
        """Await the request, but fail at once if the connection drops meanwhile.

        pymodbus leaves a request waiting for its full timeout when the peer
        closes the socket; a dropped connection should be reported (and
        reconnected) immediately.
        """
        lost = self._lost
        if lost is None:
            return await coro
        task = asyncio.ensure_future(coro)
        waiter = asyncio.ensure_future(lost.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            task.cancel()  # our caller was cancelled (shutdown): do not leave the request running
            raise
        finally:
            waiter.cancel()
        if not task.done():
            task.cancel()
            raise ConnectionException("connection closed by the peer during the request")
        return task.result()

    def _explain_bad(self, unit: int, rx: bytes) -> ModbusError:
        """Why bytes that arrived were not accepted as the answer."""
        if self.transport == TCP:
            if len(rx) >= 7 and rx[6] != unit:
                return ModbusBadFrame(f"answer from unit {rx[6]}, expected {unit}: check unit_id")
            return ModbusBadFrame(f"malformed answer {rx[:32].hex()}")
        size = rtu_response_length(rx)
        if size > 0 and len(rx) >= size:
            frame = rx[:size]
            if not check_rtu_frame(frame):
                return ModbusBadFrame(f"CRC error in answer {frame.hex()}: check wiring, termination and baud rate")
            if frame[0] != unit:
                return ModbusBadFrame(f"answer from unit {frame[0]}, expected {unit}: check unit_id")
        return ModbusBadFrame(f"unparseable answer {rx[:32].hex()}: check baud rate and parity")

    async def read_registers(self, table: str, unit: int, address: int, count: int) -> list[int]:
        c = self._client
        fn = c.read_holding_registers if table == "holding" else c.read_input_registers
        r = await self._execute(unit, lambda: fn(address, count=count, device_id=unit))
        regs = list(r.registers)  # type: ignore[attr-defined]
        if len(regs) != count:
            raise ModbusBadFrame(f"asked for {count} registers, got {len(regs)}")
        return regs

    async def read_bits(self, table: str, unit: int, address: int, count: int) -> list[bool]:
        c = self._client
        fn = c.read_coils if table == "coil" else c.read_discrete_inputs
        r = await self._execute(unit, lambda: fn(address, count=count, device_id=unit))
        bits = list(r.bits)  # type: ignore[attr-defined]
        if len(bits) < count:
            raise ModbusBadFrame(f"asked for {count} bits, got {len(bits)}")
        return [bool(b) for b in bits[:count]]

    async def write_registers(self, unit: int, address: int, values: list[int]) -> None:
        c = self._client
        if len(values) == 1:
            await self._execute(unit, lambda: c.write_register(address, values[0], device_id=unit))
        else:
            await self._execute(unit, lambda: c.write_registers(address, values, device_id=unit))

    async def write_coils(self, unit: int, address: int, values: list[bool]) -> None:
        c = self._client
        if len(values) == 1:
            await self._execute(unit, lambda: c.write_coil(address, values[0], device_id=unit))
        else:
            await self._execute(unit, lambda: c.write_coils(address, values, device_id=unit))
