"""Reconnect waits: capped exponential bound, full jitter.

The wait is uniform between 0 and the bound, not bound +- 20 %: when a city's
broker comes back, thousands of gateways that lost it at the same second must
not all return at the same second either. Full jitter spreads them over the
whole window, and the window doubles while the broker keeps refusing.
"""

from __future__ import annotations

import random


class ReconnectBackoff:
    def __init__(self, initial: float, maximum: float, *, rng: random.Random | None = None) -> None:
        self.initial = initial
        self.maximum = maximum
        self.failures = 0
        self._rng = rng or random.Random()

    def bound(self) -> float:
        return min(self.maximum, self.initial * (2 ** min(self.failures, 40)))

    def next_delay(self) -> float:
        delay = self._rng.uniform(0.0, self.bound())
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0
