"""Reconnect backoff: full jitter within a doubling, capped bound."""

from __future__ import annotations

import random

from agent.uplink.backoff import ReconnectBackoff


def test_waits_stay_within_a_doubling_capped_bound():
    b = ReconnectBackoff(1.0, 60.0, rng=random.Random(7))
    bounds = []
    for _ in range(10):
        bound = b.bound()
        delay = b.next_delay()
        assert 0.0 <= delay <= bound
        bounds.append(bound)
    assert bounds == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
    b.reset()
    assert b.bound() == 1.0


def test_a_city_of_gateways_reconnecting_together_spreads_over_the_whole_window():
    # 1,000 gateways that lost the broker at the same second, on their 4th failure (bound 8 s)
    delays = []
    for seed in range(1000):
        b = ReconnectBackoff(1.0, 300.0, rng=random.Random(seed))
        b.failures = 3
        delays.append(b.next_delay())
    per_second = [sum(1 for d in delays if s <= d < s + 1) for s in range(8)]
    assert min(delays) >= 0 and max(delays) <= 8
    assert max(per_second) < 200  # no second gets more than ~1.6x its fair share of 125
