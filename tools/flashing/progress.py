"""A one-line progress bar: percentage, throughput and time left."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"


class ProgressBar:
    """Redraws in place on a terminal; on a pipe or log prints a line every 10 %."""

    def __init__(self, out: TextIO | None = None, width: int = 30, interval: float = 0.2) -> None:
        self.out = out or sys.stderr
        self.width = width
        self.interval = interval
        self.tty = hasattr(self.out, "isatty") and self.out.isatty()
        self._phase = ""
        self._start = 0.0
        self._last = 0.0
        self._last_decile = -1

    def start(self, phase: str) -> None:
        self._phase = phase
        self._start = time.monotonic()
        self._last = 0.0
        self._last_decile = -1

    def line(self, done: int, total: int, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        elapsed = max(now - self._start, 1e-6)
        fraction = done / total if total else 1.0
        rate = done / elapsed
        left = (total - done) / rate if rate > 0 else 0.0
        filled = int(self.width * fraction)
        bar = "#" * filled + "." * (self.width - filled)
        return f"{self._phase:<8} [{bar}] {fraction * 100:5.1f}%  {done / 1e6:8.1f}/{total / 1e6:.1f} MB  {rate / 1e6:6.1f} MB/s  {_clock(left)} left"

    def update(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self.tty:
            if now - self._last >= self.interval or done >= total:
                self._last = now
                self.out.write("\r" + self.line(done, total, now))
                self.out.flush()
            return
        decile = int(10 * done / total) if total else 10
        if decile != self._last_decile:
            self._last_decile = decile
            self.out.write(self.line(done, total, now) + "\n")
            self.out.flush()

    def finish(self, done: int, total: int) -> float:
        elapsed = time.monotonic() - self._start
        if self.tty:
            self.out.write("\r" + self.line(done, total) + "\n")
            self.out.flush()
        return elapsed


class SilentProgress(ProgressBar):
    def update(self, done: int, total: int) -> None:
        pass

    def finish(self, done: int, total: int) -> float:
        return time.monotonic() - self._start
