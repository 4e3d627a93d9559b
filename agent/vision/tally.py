"""What the agent keeps of the worker's events between two reports: counts per
line, label and direction, and free bays per parking area.

This runs in the agent process, which must not load NumPy or OpenCV (they
belong to the vision worker), so it is standard library only.
"""

from __future__ import annotations

IN, OUT = "in", "out"


class IntervalCounts:
    """Crossings summed per (line, label, direction) until `take()`.

    Keys seen once stay in the table with zero afterwards, so a quiet
    interval is reported as 0, not as missing data."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, str], int] = {}

    def declare(self, line: str, label: str) -> None:
        for direction in (IN, OUT):
            self._counts.setdefault((line, label, direction), 0)

    def add(self, line: str, label: str, direction: str, n: int = 1) -> None:
        self.declare(line, label)
        self._counts[(line, label, direction)] += n

    def take(self) -> dict[tuple[str, str, str], int]:
        snap = dict(self._counts)
        for k in self._counts:
            self._counts[k] = 0
        return snap


def free_spaces(bays: dict[str, int | None]) -> int | None:
    """Free bays in an area, or None while any bay's state is still unknown."""
    if not bays or any(v is None for v in bays.values()):
        return None
    return sum(1 for v in bays.values() if v == 0)
