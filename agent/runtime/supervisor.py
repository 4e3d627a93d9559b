"""Named, supervised asyncio tasks.

A task that raises is logged once when it fails and once when it recovers,
restarted after a capped, jittered backoff on the monotonic clock, and never
takes the agent down. A task that keeps running long enough counts as
recovered, which resets its backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from drivers.base import Backoff

HEALTHY_AFTER = 30.0  # seconds a restarted task must run before its backoff resets


class SupervisedTask:
    def __init__(self, name: str, factory: Callable[[], Awaitable[None]], backoff: Backoff, log: logging.Logger) -> None:
        self.name = name
        self.factory = factory
        self.backoff = backoff
        self.log = log
        self.restarts = 0
        self.failing = False
        self.last_error: str | None = None
        self.task: asyncio.Task[None] | None = None

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self.factory()
                # A task that returns has finished its job (e.g. a disabled
                # subsystem); it is not restarted.
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - isolation is the point
                if loop.time() - started > HEALTHY_AFTER:
                    self.backoff.reset()
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.restarts += 1
                delay = self.backoff.next_delay()
                if not self.failing:
                    self.log.error("task %s failed: %s; restarting in %.1f s", self.name, self.last_error, delay, exc_info=exc)
                    self.failing = True
                else:
                    self.log.debug("task %s failed again: %s", self.name, self.last_error)
                await asyncio.sleep(delay)

    def status(self) -> dict[str, Any]:
        return {"restarts": self.restarts, "failing": self.failing, "last_error": self.last_error, "running": bool(self.task and not self.task.done())}


class Supervisor:
    def __init__(self, log: logging.Logger, *, backoff_initial: float = 1.0, backoff_max: float = 60.0) -> None:
        self.log = log
        self.tasks: dict[str, SupervisedTask] = {}
        self._initial = backoff_initial
        self._max = backoff_max

    def start(self, name: str, factory: Callable[[], Awaitable[None]]) -> SupervisedTask:
        if name in self.tasks:
            raise ValueError(f"task {name!r} already supervised")
        st = SupervisedTask(name, factory, Backoff(self._initial, self._max), self.log)
        st.task = asyncio.create_task(self._watch(st), name=name)
        self.tasks[name] = st
        return st

    async def _watch(self, st: SupervisedTask) -> None:
        runner = asyncio.ensure_future(st._loop())
        loop = asyncio.get_running_loop()
        last_restarts = -1
        started = loop.time()
        try:
            while not runner.done():
                await asyncio.wait({runner}, timeout=5.0)
                if st.restarts != last_restarts:
                    last_restarts = st.restarts
                    started = loop.time()
                elif st.failing and loop.time() - started > HEALTHY_AFTER:
                    st.failing = False
                    st.backoff.reset()
                    self.log.info("task %s recovered after %d restart(s)", st.name, st.restarts)
            runner.result()
        finally:
            runner.cancel()

    async def stop(self, timeout: float = 3.0) -> None:
        tasks = [st.task for st in self.tasks.values() if st.task]
        for task in tasks:
            task.cancel()
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                self.log.warning("task %s did not stop within %.1f s", task.get_name(), timeout)

    def status(self) -> dict[str, Any]:
        return {name: st.status() for name, st in self.tasks.items()}
