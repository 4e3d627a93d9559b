"""Block planner: coalesce the points due in a poll into as few reads as the device allows.

Reading 40 meter values one request each costs 40 round trips (seconds on a
9600-baud line); one block read costs one. Blocks bridge gaps of unmapped
registers up to `max_gap`, stay within the protocol limits (125 registers,
2000 bits) and never span a configured forbidden range. Many devices answer a
read that touches an unmapped register with exception 2 (illegal data
address); when a block gets that answer the planner learns not to bridge its
gaps (and, failing that, to cut it at point boundaries), so later polls avoid
the failing shape without configuration.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from drivers.modbus.points import PointConfig

BIT_TABLES = ("coil", "discrete")  # tables read bit by bit (fc 1/2)
MAX_REGISTERS = 125  # fc 3/4: 250 data bytes fit the 253-byte PDU
MAX_BITS = 2000  # fc 1/2


class Block:
    """One read request: `count` registers (or bits) of `table` from `start`, serving `points`."""

    __slots__ = ("table", "start", "count", "points")

    def __init__(self, table: str, start: int, count: int, points: list[PointConfig]) -> None:
        self.table = table
        self.start = start
        self.count = count
        self.points = points

    @property
    def end(self) -> int:
        return self.start + self.count - 1

    def __repr__(self) -> str:
        return f"<Block {self.table} {self.start}+{self.count} {[p.name for p in self.points]}>"


class Planner:
    def __init__(
        self,
        *,
        max_gap: int = 8,
        max_registers: int = MAX_REGISTERS,
        max_bits: int = MAX_BITS,
        forbidden: Iterable[tuple[str, int, int]] = (),
    ) -> None:
        self.max_gap = max_gap
        self.max_registers = min(max_registers, MAX_REGISTERS)
        self.max_bits = min(max_bits, MAX_BITS)
        self.forbidden = [tuple(f) for f in forbidden]
        # Learned from illegal-address answers: ranges never to bridge and
        # addresses where a block must start (address-1 and address never in one block).
        self.learned: set[tuple[str, int, int]] = set()
        self.cuts: set[tuple[str, int]] = set()

    def _blocked(self, table: str, lo: int, hi: int) -> bool:
        """True if bridging addresses lo..hi (inclusive) is not allowed."""
        if lo > hi:
            return False
        for t, s, e in self.forbidden:
            if t == table and s <= hi and e >= lo:
                return True
        for t, s, e in self.learned:
            if t == table and s <= hi and e >= lo:
                return True
        return False

    def _cut_between(self, table: str, end: int, start: int) -> bool:
        return any((table, a) in self.cuts for a in range(end + 1, start + 1))

    def plan(self, points: Iterable[PointConfig]) -> list[Block]:
        by_table: dict[str, list[PointConfig]] = {}
        for p in points:
            by_table.setdefault(p.table, []).append(p)
        blocks: list[Block] = []
        for table in sorted(by_table):
            bits = table in BIT_TABLES
            limit = self.max_bits if bits else self.max_registers
            gap_limit = self.max_gap * 16 if bits else self.max_gap
            pts = sorted(by_table[table], key=lambda p: (p.address, p.end))
            cur = [pts[0]]
            start, end = pts[0].address, pts[0].end
            for p in pts[1:]:
                new_end = max(end, p.end)
                joins = (
                    p.address - end - 1 <= gap_limit
                    and new_end - start + 1 <= limit
                    and not self._blocked(table, end + 1, p.address - 1)
                    and not self._cut_between(table, end, p.address)
                )
                if joins:
                    cur.append(p)
                    end = new_end
                else:
                    blocks.append(Block(table, start, end - start + 1, cur))
                    cur, start, end = [p], p.address, p.end
            blocks.append(Block(table, start, end - start + 1, cur))
        return blocks

    def learn_illegal(self, block: Block) -> bool:
        """Remember not to read `block` in one piece again; False if it cannot be split (one point)."""
        if len(block.points) < 2:
            return False
        pts = sorted(block.points, key=lambda p: (p.address, p.end))
        gaps = []
        reach = pts[0].end
        for p in pts[1:]:
            if p.address > reach + 1:
                gaps.append((block.table, reach + 1, p.address - 1))
            reach = max(reach, p.end)
        new_gaps = [g for g in gaps if g not in self.learned]
        if new_gaps:
            self.learned.update(new_gaps)
            return True
        # Contiguous points and still rejected: some device maps reject reads
        # across value boundaries; read the points one by one.
        added = False
        for p in pts[1:]:
            key = (block.table, p.address)
            if key not in self.cuts and p.address > pts[0].address:
                self.cuts.add(key)
                added = True
        return added
