"""High-water marks of the outbox's memory buffer: commit at once, then hold polls back.

Readings wait in memory between commits (capped at storage.memory_readings,
the oldest dropped beyond it). When drivers produce faster than the commit
stores, the buffer fills within a second or two: at the start of an overload,
before the load governor's 0.25 s steps have thinned the polls (measured: a
first commit of 4,000 readings took 0.7 s while the polls of 80 meters queued
87,000 behind it), or on a slow card. Waiting for the next tick is too late,
so the marks act on the reading that crosses them:

- COMMIT_AT: the next commit starts as soon as the current one (if any) is
  done, not after commit_interval (a long interval at a high rate would fill
  the buffer without any overload).
- HOLD_AT: the commit is behind. Listeners (the load governor) are told at
  once and hold polls back until a commit leaves less than RELEASE_BELOW
  waiting.

While storage is failing the buffer is the designed fallback (docs/storage.md):
polls are not held back for it.

The marks are shares of the buffer, properties of the agent, not of a site.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

COMMIT_AT = 0.1
HOLD_AT = 0.25  # leaves three quarters of the buffer for the polls already under way and a slow commit
RELEASE_BELOW = 0.1


class Backlog:
    """Where the outbox's memory buffer stands against its marks."""

    def __init__(self, capacity: int) -> None:
        self.commit_at = max(1, int(capacity * COMMIT_AT))
        self.hold_at = max(1, int(capacity * HOLD_AT))
        self.release_below = max(1, int(capacity * RELEASE_BELOW))
        self.held = False
        self.wake = asyncio.Event()  # set: commit now
        self._listeners: list[Callable[[bool], None]] = []

    def listen(self, callback: Callable[[bool], None]) -> None:
        """`callback(True)` when polls should be held back, `callback(False)` when that is over."""
        self._listeners.append(callback)

    def filled(self, waiting: int, *, storing: bool) -> None:
        """Readings were added and `waiting` are now uncommitted (called at COMMIT_AT and above)."""
        if not storing:
            return  # a failing store is retried once a second (Outbox._flush); waking it sooner only spins
        self.wake.set()
        if waiting >= self.hold_at and not self.held:
            self._set(True)

    def committed(self, waiting: int) -> None:
        """A commit succeeded and `waiting` readings came in meanwhile."""
        if self.held and waiting < self.release_below:
            self._set(False)

    def storage_failed(self) -> None:
        if self.held:
            self._set(False)

    def _set(self, held: bool) -> None:
        self.held = held
        for cb in self._listeners:
            cb(held)
