"""Transports for emulated Modbus devices: pymodbus TCP server, RTU on a pty pair, RTU over TCP.

- TcpEmulator: a real pymodbus 3.16 ModbusTcpServer; each EmulatedDevice is a
  SimDevice whose `action` hook serves values from the model (and its
  exception and delay faults); the server's `trace_packet` hook silences
  answers or rewrites their unit id for the other faults.
- PtyRtuEmulator: an RTU responder on the master side of a pty pair; the
  agent opens the slave path like a USB RS-485 adapter. Unknown unit ids get
  no answer, as on a real line. With `timing=True` it is the line-timing
  emulator of the benchmark: each answer arrives when it would on a real line
  (11 bits per character at the baud rate, plus the device's turnaround) and
  requests sent before the 3.5-character gap has elapsed are counted.
- RtuOverTcpEmulator: the same responder behind a TCP socket, as a
  transparent RS-485-to-Ethernet converter.

Test and demo code: never imported by the agent at run time.
"""

from __future__ import annotations

import asyncio
import os
import socket
import tty
from collections.abc import Callable

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import SimData, SimDevice
from pymodbus.simulator.simutils import DataType

from drivers.codecs.modbus_crc import build_rtu_frame, check_rtu_frame, rtu_request_length
from hil_tests.emulators.modbus_devices import DeviceException, EmulatedDevice

BITS_PER_CHAR = 11
_FC_TABLE = {1: "coil", 2: "discrete", 3: "holding", 4: "input", 5: "coil", 6: "holding", 15: "coil", 16: "holding"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TcpEmulator:
    """Several unit ids behind one pymodbus Modbus TCP server on loopback."""

    def __init__(self, devices: list[EmulatedDevice], port: int = 0, *, size: int = 1024) -> None:
        self.devices = {d.unit_id: d for d in devices}
        self.port = port or free_port()
        # pymodbus builds its register lists up front (seconds for 65536),
        # so the address space served is 0..size-1 (and size*16 bits).
        self.size = size
        self.server: ModbusTcpServer | None = None

    def _simdevice(self, dev: EmulatedDevice) -> SimDevice:
        async def action(fc: int, start: int, address: int, count: int, regs: list[int], values: list | None) -> ExcCodes | None:
            if dev.delay:
                await asyncio.sleep(dev.delay)
            table = _FC_TABLE[fc]
            try:
                if values is not None:
                    dev.write(table, address, [int(v) for v in values])
                    return None
                if table in ("coil", "discrete"):
                    # pymodbus keeps bits 16 to a register and passes the register count
                    dev.read(table, address, 1)
                    for r in range(address // 16, address // 16 + count):
                        word = 0
                        for b in range(16):
                            word |= (dev.tables[table].get(r * 16 + b, 0) & 1) << b
                        regs[r - start] = word
                    return None
                for i, v in enumerate(dev.read(table, address, count)):
                    regs[address - start + i] = v
            except DeviceException as exc:
                return ExcCodes(exc.code)
            return None

        bits = [SimData(0, count=self.size, values=False, datatype=DataType.BITS)]
        regs = [SimData(0, count=self.size, values=0, datatype=DataType.REGISTERS)]
        return SimDevice(id=dev.unit_id, simdata=(bits, list(bits), regs, list(regs)), action=action)

    def _catch_all(self) -> SimDevice:
        async def action(*_args: object) -> ExcCodes:
            return ExcCodes.GATEWAY_NO_RESPONSE  # what a TCP gateway answers for a unit it does not reach

        regs = [SimData(0, count=self.size, values=0, datatype=DataType.REGISTERS)]
        bits = [SimData(0, count=self.size, values=False, datatype=DataType.BITS)]
        return SimDevice(id=0, simdata=(bits, list(bits), regs, list(regs)), action=action)

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if not sending or len(data) < 8:
            return data
        dev = self.devices.get(data[6])
        if dev is None:
            return data
        if dev.silent:
            return b""
        if dev.wrong_unit:
            return data[:6] + bytes(((data[6] + 1) & 0xFF,)) + data[7:]
        return data

    async def start(self) -> None:
        sims = [self._simdevice(d) for d in self.devices.values()] + [self._catch_all()]
        self.server = ModbusTcpServer(sims, address=("127.0.0.1", self.port), trace_packet=self._trace)
        await self.server.serve_forever(background=True)

    def drop_connections(self) -> int:
        """Close every client connection (the server keeps listening); returns how many."""
        if self.server is None:
            return 0
        conns = list(self.server.active_connections.values())
        for c in conns:
            if c.transport:
                c.transport.abort()
        return len(conns)

    async def stop(self) -> None:
        if self.server is not None:
            self.drop_connections()
            await self.server.shutdown()
            self.server = None


class RtuResponder:
    """RTU framing and line behaviour for a set of devices, over any byte stream."""

    def __init__(
        self, devices: dict[int, EmulatedDevice], write: Callable[[bytes], None], *, baudrate: int = 9600, turnaround: float = 0.0, timing: bool = False
    ) -> None:
        self.devices = devices
        self.write = write
        self.char = BITS_PER_CHAR / baudrate
        self.gap = 3.5 * self.char if baudrate <= 19200 else 0.00175
        self.turnaround = turnaround
        self.timing = timing
        self._buf = bytearray()
        self._first_at = 0.0
        self._line_free = 0.0
        self._tasks: set[asyncio.Task] = set()
        self.frames = 0
        self.ideal_time = 0.0  # line time the answered transactions need at best
        self.late_time = 0.0  # how much later than due this process managed to answer (its own scheduling delay)
        self.crc_rejects = 0
        self.gap_violations = 0
        self.answered = 0

    def feed(self, data: bytes) -> None:
        now = asyncio.get_running_loop().time()
        if not self._buf:
            self._first_at = now
        self._buf += data
        while self._buf:
            n = rtu_request_length(self._buf)
            if n < 0:
                self._buf.clear()  # unknown function code: wait for the next frame
                return
            if n == 0 or len(self._buf) < n:
                return
            frame = bytes(self._buf[:n])
            del self._buf[:n]
            first = self._first_at
            self._first_at = now
            task = asyncio.ensure_future(self._answer(frame, first))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _answer(self, frame: bytes, first_at: float) -> None:
        self.frames += 1
        if not check_rtu_frame(frame):
            self.crc_rejects += 1  # a real device ignores a corrupted request
            return
        unit = frame[0]
        dev = self.devices.get(unit)
        if dev is None or dev.silent:
            return
        resp = build_rtu_frame((unit % 247) + 1 if dev.wrong_unit else unit, dev.handle_pdu(frame[1:-2]))
        if dev.crc_error:
            resp = resp[:-1] + bytes((resp[-1] ^ 0x5A,))
        delay = dev.delay
        if self.timing:
            loop = asyncio.get_running_loop()
            if first_at < self._line_free + self.gap - 1e-4:
                self.gap_violations += 1
            # The request takes its own length on the wire, then the device
            # turns around, then the answer takes its length on the wire.
            done_at = max(first_at, self._line_free) + len(frame) * self.char + self.turnaround + len(resp) * self.char
            self._line_free = done_at
            self.ideal_time += (len(frame) + len(resp)) * self.char + self.turnaround + self.gap
            delay = max(delay, done_at - loop.time())
        if self.timing:
            # The loop's timers are ms-grained; spin the last stretch so the
            # answer leaves when a real line would deliver it.
            loop = asyncio.get_running_loop()
            due = loop.time() + delay
            if delay > 0.0015:
                await asyncio.sleep(delay - 0.0015)
            while loop.time() < due:
                pass
        elif delay > 0:
            await asyncio.sleep(delay)
        if self.timing:
            self.late_time += max(0.0, asyncio.get_running_loop().time() - self._line_free)
        self.answered += 1
        self.write(resp)

    def limit_per_second(self, request_bytes: int, response_bytes: int) -> float:
        """Transactions per second a perfect master reaches on this line."""
        return 1.0 / ((request_bytes + response_bytes) * self.char + self.turnaround + self.gap)


class PtyRtuEmulator:
    """An RS-485 line with devices, as a pty pair: the agent opens `path`."""

    def __init__(self, devices: list[EmulatedDevice], *, baudrate: int = 9600, turnaround: float = 0.0, timing: bool = False) -> None:
        self.devices = {d.unit_id: d for d in devices}
        self._opts = {"baudrate": baudrate, "turnaround": turnaround, "timing": timing}
        self.path = ""
        self._master = self._slave = -1
        self.responder: RtuResponder | None = None

    async def start(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo or line editing before the agent opens it
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self.responder = RtuResponder(self.devices, self._write, **self._opts)  # type: ignore[arg-type]
        asyncio.get_running_loop().add_reader(self._master, self._readable)

    def _write(self, data: bytes) -> None:
        try:
            os.write(self._master, data)
        except OSError:
            pass  # nobody has the port open

    def _readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except OSError:
            return
        if data and self.responder:
            self.responder.feed(data)

    async def stop(self) -> None:
        if self._master >= 0:
            asyncio.get_running_loop().remove_reader(self._master)
            os.close(self._master)
            os.close(self._slave)
            self._master = self._slave = -1


class RtuOverTcpEmulator:
    """Devices behind a transparent RS-485-to-TCP converter (RTU frames on a TCP socket)."""

    def __init__(self, devices: list[EmulatedDevice], port: int = 0) -> None:
        self.devices = {d.unit_id: d for d in devices}
        self.port = port or free_port()
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        responder = RtuResponder(self.devices, writer.write)
        try:
            while data := await reader.read(4096):
                responder.feed(data)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def drop_connections(self) -> int:
        n = len(self._writers)
        for w in list(self._writers):
            w.transport.abort()
        return n

    async def stop(self) -> None:
        self.drop_connections()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
