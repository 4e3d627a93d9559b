"""A read-only tap on the readings stream, for `diag readings --follow`.

Keeps the newest readings in a ring and hands copies to subscribers through
bounded queues; a slow technician's laptop drops readings from its own view
(counted), never slows the drivers or the outbox.
"""

from __future__ import annotations

import asyncio
from collections import deque

from agent.readings import Reading


class Subscription:
    def __init__(self, maxsize: int) -> None:
        self.queue: asyncio.Queue[Reading] = asyncio.Queue(maxsize)
        self.dropped = 0


class ReadingTap:
    def __init__(self, keep: int = 500) -> None:
        self.recent: deque[Reading] = deque(maxlen=keep)
        self._subs: set[Subscription] = set()

    def publish(self, readings: list[Reading]) -> None:
        self.recent.extend(readings)
        for sub in self._subs:
            for r in readings:
                try:
                    sub.queue.put_nowait(r)
                except asyncio.QueueFull:
                    sub.dropped += 1

    def subscribe(self, maxsize: int = 1000) -> Subscription:
        sub = Subscription(maxsize)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)
