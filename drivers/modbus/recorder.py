"""Flight recorder: the last N raw frames of a bus, for error reports and diagnostics bundles."""

from __future__ import annotations

import time
from collections import deque
from typing import Any


class FlightRecorder:
    """A ring of (wall time, direction, hex) entries; `note` adds what happened (timeout, exception)."""

    def __init__(self, size: int = 64) -> None:
        self._ring: deque[tuple[float, str, str]] = deque(maxlen=max(size, 1))
        self.enabled = size > 0

    def frame(self, sending: bool, data: bytes) -> None:
        if self.enabled:
            self._ring.append((time.time(), "tx" if sending else "rx", data.hex()))

    def note(self, text: str) -> None:
        if self.enabled:
            self._ring.append((time.time(), "--", text))

    def snapshot(self) -> list[dict[str, Any]]:
        return [{"wall": w, "dir": d, "data": x} for w, d, x in self._ring]

    def lines(self, last: int = 8) -> list[str]:
        out = []
        for wall, d, x in list(self._ring)[-last:]:
            stamp = time.strftime("%H:%M:%S", time.gmtime(wall)) + f".{int(wall % 1 * 1000):03d}Z"
            out.append(f"{stamp} {d} {x}")
        return out
