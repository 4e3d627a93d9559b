"""The vision supervisor: lives in the agent's asyncio loop, runs the vision
worker process, and turns its events into readings.

- starts the worker from a factory (a spawned process by default);
- restarts it when it dies, after `restart_delay`, at most `max_restarts`
  times per `restart_window` (a worker that crashes on every start must not
  eat the CPU the rest of the agent needs);
- kills it when its heartbeat stops for `heartbeat_timeout` (a hang in a
  decoder or in inference), or when it takes longer than `start_timeout` to
  load its models;
- sums crossings per camera and report interval and emits readings
  (agent.vision.report), so counts of a worker that dies are only lost for
  the frames it had not finished.
Nothing here blocks the loop: results come through a reader thread.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agent.readings import Reading
from agent.vision.handle import WorkerFactory, WorkerHandle, spawn_worker
from agent.vision.report import CameraReport

if TYPE_CHECKING:
    from agent.vision.config import CameraConfig, VisionConfig

_TICK = 0.05  # seconds between looks at the worker's results


class VisionSupervisor:
    def __init__(
        self,
        cameras: list[CameraConfig],
        vision: VisionConfig,
        *,
        stamp: Callable[..., Reading],
        emit: Callable[[list[Reading]], None],
        log: logging.Logger,
        data_dir: str,
        worker_factory: WorkerFactory = spawn_worker,
    ) -> None:
        self.cameras = [c for c in cameras if c.enabled]
        self.vision = vision
        self.stamp = stamp
        self.emit = emit
        self.log = log
        self.data_dir = data_dir
        self.factory = worker_factory
        self.reports = {c.name: CameraReport(c) for c in self.cameras}
        self._next_report = {c.name: time.monotonic() + c.report_interval for c in self.cameras}
        self.handle: WorkerHandle | None = None
        self.restarts = 0
        self.last_error = ""
        self.worker_ready = False
        self.worker_dropped = 0
        self.finished: set[str] = set()  # cameras whose (non-looping) file has ended
        self._restart_times: collections.deque[float] = collections.deque()
        self._stats: dict[str, dict[str, Any]] = {}
        self._analysed_seen: dict[str, int] = {}
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._req = 0
        self._closing = False
        self.latency_ms: collections.deque[float] = collections.deque(maxlen=500)
        self.counted = 0  # crossings received since start

    # ---- supervised task -------------------------------------------------
    async def run(self) -> None:
        if not self.cameras:
            return
        # intervals are reported even while the worker is down (as offline)
        reporter = asyncio.create_task(self._report_loop(), name="vision-report")
        try:
            while not self._closing:
                await self._rate_limit()
                self.handle = self.factory(self.cameras, self.vision, self.data_dir)
                self.worker_ready = False
                self._analysed_seen.clear()
                self.log.info("vision worker started (pid %s) for %d camera(s)", self.handle.pid, len(self.cameras))
                reason = await self._watch(self.handle)
                await asyncio.to_thread(self.handle.kill)  # reaping may take a moment: not on the loop
                self._fail_pending(f"vision worker {reason}")
                if self._closing:
                    break
                self.restarts += 1
                self.last_error = reason
                self.log.error("vision worker %s; restarting in %.1f s", reason, self.vision.restart_delay)
                await asyncio.sleep(self.vision.restart_delay)
        finally:
            reporter.cancel()
            if self.handle is not None and self.handle.alive():
                self.handle.send(("stop",))

    async def _report_loop(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            self._report_due()

    async def _rate_limit(self) -> None:
        now = time.monotonic()
        window = self.vision.restart_window
        while self._restart_times and now - self._restart_times[0] > window:
            self._restart_times.popleft()
        if len(self._restart_times) >= self.vision.max_restarts:
            wait = window - (now - self._restart_times[0])
            self.log.error(
                "vision worker restarted %d times in %.0f s; waiting %.0f s before the next try (see `last_error` in `edge-agent diag status`)",
                len(self._restart_times),
                window,
                wait,
            )
            await asyncio.sleep(max(wait, 0.0))
            self._restart_times.popleft()
        self._restart_times.append(time.monotonic())

    async def _watch(self, h: WorkerHandle) -> str:
        """Run until the worker dies or hangs; returns why."""
        while True:
            self._handle_messages(h.drain())
            if not h.alive():
                self._handle_messages(h.drain())
                code = h.process.exitcode
                return f"exited with code {code}" if code is not None and code >= 0 else f"was killed by signal {-(code or 0)}"
            limit = self.vision.heartbeat_timeout if self.worker_ready else self.vision.start_timeout
            age = h.heartbeat_age()
            if age > limit:
                return f"hung (no heartbeat for {age:.1f} s)" if self.worker_ready else f"did not start within {limit:.0f} s"
            if self._closing:
                return "stopped"
            await asyncio.sleep(_TICK)

    def _handle_messages(self, msgs: list[tuple]) -> None:
        now = time.monotonic()
        for m in msgs:
            kind = m[0]
            if kind == "count":
                _, cam, line, label, direction, captured = m
                rep = self.reports.get(cam)
                if rep is not None:
                    rep.count(line, label, direction)
                    self.counted += 1
                    self.latency_ms.append((now - captured) * 1000)
            elif kind == "zone":
                _, cam, zone, value, mono = m
                if cam in self.reports:
                    self.reports[cam].zone(zone, value, mono)
            elif kind == "bin":
                _, cam, name, level, overflow = m
                if cam in self.reports:
                    self.reports[cam].bins[name] = (level, overflow)
            elif kind == "stats":
                self._on_stats(m[1])
                self.worker_dropped = m[2]
            elif kind == "ready":
                self.worker_ready = True
                for cam, info in m[1].items():
                    if info.get("error"):
                        self.log.error("camera %s: %s", cam, info["error"])
            elif kind == "reply":
                fut = self._pending.pop(m[1], None)
                if fut is not None and not fut.done():
                    if m[2]:
                        fut.set_result(m[3])
                    else:
                        fut.set_exception(RuntimeError(m[3]))
            elif kind == "log":
                self.log.log(m[1], "%s", m[2])
            elif kind == "finished":
                self.finished.add(m[1])

    def _on_stats(self, stats: dict[str, dict[str, Any]]) -> None:
        for cam, st in stats.items():
            self._stats[cam] = st
            rep = self.reports.get(cam)
            if rep is None:
                continue
            n = int(st.get("frames_analysed", 0))
            seen = self._analysed_seen.get(cam, 0)
            rep.analysed_in_interval += n - seen if n >= seen else n
            self._analysed_seen[cam] = n
            rep.last_error = st.get("error") or ""

    def _report_due(self, force: bool = False) -> None:
        now = time.monotonic()
        for cam in self.cameras:
            if force or now >= self._next_report[cam.name]:
                self._next_report[cam.name] = now + cam.report_interval
                readings = self.reports[cam.name].readings(self.stamp, now)
                if readings:
                    self.emit(readings)

    def _fail_pending(self, why: str) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(RuntimeError(f"{why}; try again once it has restarted"))
        self._pending.clear()

    # ---- API used by the runtime and the diagnostics -----------------------
    async def close(self) -> None:
        """Stop the worker (within about 2 s) and emit the counts of the
        interval in progress, so a restart of the agent loses none."""
        self._closing = True
        h = self.handle
        if h is not None and h.alive():
            h.send(("stop",))
            deadline = time.monotonic() + 1.0
            while h.alive() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            self._handle_messages(h.drain())
            await asyncio.to_thread(h.kill)
        elif h is not None:
            self._handle_messages(h.drain())
        self._fail_pending("vision is shutting down")
        self._report_due(force=True)

    def flush(self) -> None:
        """Emit every camera's readings now and start a new interval (tests, shutdown)."""
        if self.handle is not None:
            self._handle_messages(self.handle.drain())
        self._report_due(force=True)

    def status(self) -> dict[str, Any]:
        h = self.handle
        lat = sorted(self.latency_ms)
        worker = {
            "pid": h.pid if h else None,
            "alive": bool(h and h.alive()),
            "restarts": self.restarts,
            "last_error": self.last_error,
            "heartbeat_age_s": round(h.heartbeat_age(), 2) if h else None,
            "results_dropped": self.worker_dropped,
            "latency_ms_p50": round(lat[len(lat) // 2], 1) if lat else None,
        }
        cams = {}
        for c in self.cameras:
            st = dict(self._stats.get(c.name, {}))
            st.setdefault("model", c.model if c.mode == "detector" else "motion")
            st["restarts"] = self.restarts
            st["last_error"] = st.get("error") or (self.last_error if not worker["alive"] else "")
            st["finished"] = c.name in self.finished
            cams[c.name] = st
        return {"worker": worker, **cams}

    async def _request(self, msg: tuple, timeout: float) -> Any:
        h = self.handle
        if h is None or not h.alive() or not self.worker_ready:
            raise RuntimeError("the vision worker is not running; check `edge-agent diag status` for its last error")
        self._req += 1
        req = self._req
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[req] = fut
        if not h.send((msg[0], req, *msg[1:])):
            self._pending.pop(req, None)
            raise RuntimeError("the vision worker is busy with other requests; try again in a few seconds")
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            self._pending.pop(req, None)
            raise RuntimeError(f"the vision worker did not answer within {timeout:.0f} s; check `edge-agent diag status`") from None

    async def snapshot(self, camera: str, *, blur_people: bool) -> bytes:
        self._known(camera)
        return await self._request(("snapshot", camera, blur_people), 10.0)

    async def record_reference(self, camera: str, bin_name: str, which: str) -> str:
        if which not in ("empty", "full"):
            raise ValueError(f"reference must be 'empty' or 'full', not {which!r}")
        self._known(camera)
        return await self._request(("reference", camera, bin_name, which), 10.0)

    def _known(self, camera: str) -> None:
        if camera not in self.reports:
            raise LookupError(f"no enabled camera {camera!r}; configured: {', '.join(self.reports) or 'none'}")
