"""The `modbus` device driver: one poll loop per device, block reads, statuses never crashes.

Each point has its own interval; every wake-up reads only the points that are
due, coalesced into blocks by the planner. Exception answers, timeouts and
bad frames become the status of the points concerned; the device is online
while its last poll got an answer. A device that stops answering is retried
with capped backoff and polled normally again as soon as it answers.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Any, ClassVar

from agent.readings import ERROR, OUT_OF_RANGE, TIMEOUT, Reading, Value
from drivers.base import Backoff, Driver
from drivers.codecs.modbus_registers import BITS, BOOL, decode, encode
from drivers.modbus.errors import ILLEGAL_ADDRESS, ModbusError, ModbusExceptionResponse
from drivers.modbus.planner import BIT_TABLES, Block, Planner

if TYPE_CHECKING:
    from drivers.config import DeviceConfig
    from drivers.modbus.points import PointConfig


def _decode(p: PointConfig, raw: list[Any]) -> Value:
    if p.table in BIT_TABLES:
        return bool(raw[0])
    return decode(raw, p.type, p.byte_order or "big", p.word_order or "big", p.scale, p.offset, p.bit, p.width)  # type: ignore[no-any-return]


class ModbusDriver(Driver):
    config_model: ClassVar[str] = "drivers.modbus.config:ModbusDeviceConfig"
    bus_types: ClassVar[tuple[str, ...]] = ("modbus_tcp", "modbus_rtu", "modbus_rtu_over_tcp")

    def __init__(self, config: DeviceConfig, bus: Any, ctx: Any) -> None:
        super().__init__(config, bus, ctx)
        cfg: Any = config  # a ModbusDeviceConfig, or its plain copy in the running agent
        self.cfg = cfg
        self.points = {p.name: p for p in cfg.resolved_points}
        self.planner = Planner(
            max_gap=cfg.resolved_max_gap, max_registers=cfg.resolved_max_registers, forbidden=[(f.table, f.start, f.end) for f in cfg.resolved_forbidden]
        )
        self.backoff = Backoff.from_policy(cfg.failure)
        self.requests = 0  # block reads sent, for diagnostics and the benchmark
        self._plans: dict[tuple, list[Block]] = {}

    # -- scheduling -----------------------------------------------------------

    def _interval(self, p: PointConfig) -> float:
        return p.poll_interval or self.cfg.poll_interval

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        due_at = {name: now for name in self.points}
        for p in self.points.values():
            self.schedule.note(self._interval(p))
        while True:
            now = loop.time()
            due = [self.points[n] for n, t in due_at.items() if t <= now + 0.001]
            if due:
                readings, answered = await self.poll_points(due)
                self.publish(readings)
                now = loop.time()
                if answered:
                    self.backoff.reset()
                    for p in due:
                        # Fixed rate per point: a late poll skips missed slots instead of
                        # bursting, and while the runtime sheds load some slots are left
                        # out. Points on the same interval keep sharing slots (and blocks).
                        due_at[p.name] = self.schedule.next_slot(p.name, due_at[p.name], self._interval(p), now)
                else:
                    retry = now + self.retry_delay()
                    for name in due_at:
                        due_at[name] = max(due_at[name], retry) if due_at[name] > now else retry
            await asyncio.sleep(max(0.0, min(due_at.values()) - loop.time()))

    def _plan(self, points: list[PointConfig]) -> list[Block]:
        # The same points are due poll after poll; plan once per set (and per
        # state of what the planner learned).
        key = (tuple(p.name for p in points), len(self.planner.learned), len(self.planner.cuts))
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) > 64:
                self._plans.clear()
            plan = self._plans[key] = self.planner.plan(points)
        return plan

    def retry_delay(self) -> float:
        """Wait after a poll nobody answered: backoff, never more often than the
        fastest point, never longer than the cap (or that point's interval)."""
        fastest = min(self._interval(p) for p in self.points.values())
        return min(max(self.backoff.next_delay(), fastest), max(self.cfg.failure.backoff_max, fastest))

    # -- polling --------------------------------------------------------------

    async def poll_points(self, points: list[PointConfig]) -> tuple[list[Reading], bool]:
        """Read `points` in planned blocks. Returns the readings and whether the device answered at all."""
        readings: list[Reading] = []
        answered = False
        dead: ModbusError | None = None  # once the device is silent, skip its other blocks this poll
        queue = list(self._plan(points))
        while queue:
            block = queue.pop(0)
            if dead is not None:
                readings += self._failed(block.points, dead)
                continue
            try:
                raw = await self._read_block(block)
            except ModbusExceptionResponse as exc:
                answered = True
                if exc.code == ILLEGAL_ADDRESS and self.planner.learn_illegal(block):
                    self.ctx.log.info(
                        "%s: block %s %d+%d rejected (illegal address); reading it in smaller pieces from now on",
                        self.cfg.name,
                        block.table,
                        block.start,
                        block.count,
                    )
                    queue = self.planner.plan(block.points) + queue
                    continue
                readings += self._failed(block.points, exc)
                continue
            except ModbusError as exc:
                dead = exc
                readings += self._failed(block.points, exc)
                continue
            answered = True
            readings += self._decode_block(block, raw)
        if answered:
            self.health.succeeded()
        elif dead is not None:
            frames = self.bus.frames(6) if self.bus is not None and hasattr(self.bus, "frames") else []
            self.health.failed(dead.status, f"{dead}" + (" | last frames: " + "; ".join(frames) if frames else ""))
        return readings, answered

    async def _read_block(self, block: Block) -> list[Any]:
        if self.bus is None:
            raise ModbusError("no bus")
        op = "read_bits" if block.table in BIT_TABLES else "read_registers"
        attempts = 1 + self.cfg.failure.retries
        for attempt in range(attempts):
            self.requests += 1
            try:
                return await self.bus.request(op, self.cfg.unit_id, block.start, (block.table, block.count), self.cfg.failure.timeout)  # type: ignore[no-any-return]
            except ModbusExceptionResponse:
                raise
            except ModbusError:
                # Retries cover lost answers and a dropped socket (reconnected
                # at once); a bus in reconnect backoff fails again instantly.
                if attempt + 1 == attempts:
                    raise
        raise AssertionError("unreachable")

    def _decode_block(self, block: Block, raw: list[Any]) -> list[Reading]:
        out = []
        for p in block.points:
            off = p.address - block.start
            try:
                value = _decode(p, raw[off : off + p.count])
            except (ValueError, UnicodeError) as exc:
                out.append(self.ctx.reading(p.name, None, p.unit, status=ERROR, detail=f"cannot decode {p.type}: {exc}"))
                continue
            out.append(self._checked(p, value))
        return out

    def _checked(self, p: PointConfig, value: Value) -> Reading:
        if isinstance(value, float) and not math.isfinite(value):
            return self.ctx.reading(p.name, None, p.unit, status=OUT_OF_RANGE, detail=f"device sent {value}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if (p.min is not None and value < p.min) or (p.max is not None and value > p.max):
                return self.ctx.reading(p.name, None, p.unit, status=OUT_OF_RANGE, detail=f"{value} outside {p.min}..{p.max}")
        return self.ctx.reading(p.name, value, p.unit)

    def _failed(self, points: list[PointConfig], exc: ModbusError) -> list[Reading]:
        detail = str(exc)
        if exc.status == TIMEOUT:
            detail += f" (unit {self.cfg.unit_id}; check unit_id, baud rate, wiring)"
        return [self.ctx.reading(p.name, None, p.unit, status=exc.status, detail=detail) for p in points]

    # -- single points and writes ---------------------------------------------

    def _point(self, name: str) -> PointConfig:
        if name not in self.points:
            raise KeyError(f"device {self.cfg.name} has no point {name!r}; points: {', '.join(sorted(self.points))}")
        return self.points[name]

    async def read_point(self, point: str) -> Reading:
        p = self._point(point)
        try:
            raw = await self._read_block(Block(p.table, p.address, p.count, [p]))
        except ModbusError as exc:
            return self._failed([p], exc)[0]
        return self._decode_block(Block(p.table, p.address, p.count, [p]), raw)[0]

    async def write_point(self, point: str, value: Value) -> None:
        """Write a writable holding-register or coil point; raises ModbusError subclasses or ValueError."""
        p = self._point(point)
        if not p.writable:
            raise ValueError(f"point {point!r} of {self.cfg.name} is not writable; set writable = true in its point or override")
        if self.bus is None:
            raise ModbusError("no bus")
        unit, timeout = self.cfg.unit_id, self.cfg.failure.timeout
        if p.table == "coil":
            await self.bus.request("write_coils", unit, p.address, [bool(value)], timeout)
            return
        current = 0
        if p.type in (BOOL, BITS) and p.bit is not None:
            # A flag shares its register with others: read-modify-write.
            current = (await self.bus.request("read_registers", unit, p.address, ("holding", 1), timeout))[0]
        regs = encode(value, p.type, p.byte_order or "big", p.word_order or "big", p.scale, p.offset, p.bit, p.width, p.length, current)
        await self.bus.request("write_registers", unit, p.address, regs, timeout)

    # -- diagnostics ----------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {
            **super().status(),
            "unit_id": self.cfg.unit_id,
            "requests": self.requests,
            "learned_splits": sorted(self.planner.learned) + sorted(self.planner.cuts),
        }

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "profile": self.cfg.profile,
            "unit_id": self.cfg.unit_id,
            "points": {p.name: p.unit for p in self.points.values()},
        }
