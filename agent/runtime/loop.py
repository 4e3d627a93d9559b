"""The agent's event loop, with a clock of the time it spends waiting for I/O.

Everything in the agent shares one asyncio loop; how much of the wall time it
spends waiting in select() is the one honest measure of how much it has left
to give. The loop built here counts that time in its selector (`IdleClock`),
which costs one clock read per loop iteration. The load governor
(agent.runtime.overload) reads it through `idle_clock()`; on a loop made
elsewhere (an in-process test) there is none and the governor goes by the
agent's CPU time alone.
"""

from __future__ import annotations

import asyncio
import selectors
import time
import weakref
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_clocks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, IdleClock] = weakref.WeakKeyDictionary()


class IdleClock(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """The platform's default selector, adding up the seconds spent blocked in select()."""

    def __init__(self) -> None:
        super().__init__()
        self.idle = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        started = time.perf_counter()
        try:
            return super().select(timeout)  # type: ignore[no-any-return]
        finally:
            self.idle += time.perf_counter() - started


def new_event_loop() -> asyncio.AbstractEventLoop:
    clock = IdleClock()
    loop = asyncio.SelectorEventLoop(clock)
    _clocks[loop] = clock
    return loop


def idle_clock(loop: asyncio.AbstractEventLoop) -> IdleClock | None:
    """The idle clock of a loop made by new_event_loop(), else None."""
    return _clocks.get(loop)


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run() on a loop with an idle clock."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)
