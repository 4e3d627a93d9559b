"""Which frame is analysed when, and where: the vision worker's turn over its
cameras.

On every turn the scheduler
- takes the due frame of each camera whose turn it is,
- for a model camera prepares it (letterbox, tensor) and hands it to the
  inference thread (agent.vision.stages), if the hand-off has room; a
  camera without a model (motion, bins, reference bays) is analysed at once;
- finishes every frame whose inference is over (output decoding, tracker,
  lines, zones, bins) and sends its events.
So while frame N is in inference, frame N+1 is prepared and frame N-1
finished. Each camera's frames are finished in the order they were taken,
with their own timestamps, so tracks and counts are those of the serial path
(`overlap=False`, every step in a row on this thread).
"""

from __future__ import annotations

import collections
import logging
import os
import statistics
import time
from typing import Any, Protocol

from agent.vision.affinity import cpu_plan, pin_this_thread
from agent.vision.config import CameraConfig
from agent.vision.stages import InferenceStage, Job

_BIN_EVERY = 1.0  # seconds between bin level messages of a camera
_LATENCY_FRAMES = 100  # frames over which the status's analysis latency is taken


class Sender(Protocol):
    dropped: int  # messages it could not send

    def send(self, msg: tuple) -> None: ...


class Camera:
    """A camera's source, analysis and scheduling state in the worker."""

    def __init__(self, cam: CameraConfig, source: Any, pipe: Any) -> None:
        self.cam = cam
        self.source = source
        self.pipe = pipe  # CameraPipeline, or None when its model failed to load
        self.period = 1.0 / cam.detect_fps
        self.next_due = time.monotonic()
        self.missed = 0  # detection slots missed because the worker was busy
        self.analysed = 0
        self.in_flight = 0  # frames handed to inference and not finished yet
        self.finished_sent = False
        self.error = ""
        self._fps_count = 0
        self._fps_since = time.monotonic()
        self.fps = 0.0
        self.last_bins: float = 0.0
        # ms from a frame leaving its reader to its events, recent frames
        self.analysis_ms: collections.deque[float] = collections.deque(maxlen=_LATENCY_FRAMES)

    def due(self, now: float) -> bool:
        # files analysed at media time hand over exactly the due frames
        return (self.source.kind == "file" and not self.cam.realtime) or now >= self.next_due

    def advance(self, now: float) -> None:
        if self.source.kind == "file" and not self.cam.realtime:
            return
        late = now - self.next_due
        if late > self.period:
            self.missed += int(late // self.period)
            self.next_due = now + self.period
        else:
            self.next_due += self.period

    def stats(self, now: float) -> dict[str, Any]:
        span = now - self._fps_since
        if span >= 1.0:
            self.fps, self._fps_count, self._fps_since = self._fps_count / span, 0, now
        p = self.pipe
        return {
            **self.source.stats(),
            "mode": self.cam.mode,
            "model": p.info.get("model") if p else None,
            "fps": round(self.fps, 2),
            "frames_analysed": self.analysed,
            "slots_missed": self.missed,
            "stage_ms": {k: (round(v.value, 2) if v.value is not None else None) for k, v in p.stage_ms.items()} if p else {},
            "analysis_ms": round(statistics.median(self.analysis_ms), 1) if self.analysis_ms else None,
            "tracks": sum(1 for t in p.tracks if t.confirmed) if p else 0,
            "reference_errors": p.reference_errors() if p else {},
            "error": self.error or self.source.last_error,
        }


class Scheduler:
    """One turn at a time, from the thread that made it (the worker's main
    thread). `overlap=False` runs every step of a frame in a row, without the
    inference thread. `pin` gives the inference thread a CPU of its own and
    keeps this thread, and the camera readers it starts afterwards, off it
    (agent.vision.affinity); close() lets this thread run anywhere again."""

    def __init__(
        self, cams: list[Camera], out: Sender, log: logging.Logger, *, overlap: bool = True, depth: int = 1, pin: bool = False, onnx_threads: int = 1
    ) -> None:
        self.cams = cams
        self.out = out
        self.log = log
        staged = any(c.pipe is not None and c.pipe.model is not None for c in cams)
        plan = cpu_plan(onnx_threads) if pin and overlap and staged else None
        self._cpus_before = os.sched_getaffinity(0) if plan else None
        self.stage = InferenceStage(depth, plan.inference if plan else None) if overlap and staged else None
        if plan and pin_this_thread(plan.rest):
            log.info("vision inference on CPU %s, camera readers and analysis on %s", sorted(plan.inference), sorted(plan.rest))
        self._start = 0  # camera that gets the first look at the hand-off next turn (round robin)

    def heartbeat(self, now: float) -> float:
        return self.stage.heartbeat(now) if self.stage is not None else now

    def turn(self, now: float) -> bool:
        """Feed and collect once; False when there was nothing to do."""
        busy = False
        n = len(self.cams)
        for i in [(self._start + k) % n for k in range(n)]:
            c = self.cams[i]
            if c.pipe is None:
                continue
            if c.source.finished:
                if not c.finished_sent and c.in_flight == 0:
                    self.out.send(("stats", {x.cam.name: x.stats(now) for x in self.cams}, self.out.dropped))
                    self.out.send(("finished", c.cam.name))
                    c.finished_sent = True
                continue
            if not c.due(now):
                continue
            staged = self.stage is not None and c.pipe.model is not None
            if staged and not self.stage.has_room():  # type: ignore[union-attr]
                continue  # the frame stays with its reader, which keeps only the newest
            frame = c.source.take()
            if frame is None:
                continue
            c.advance(now)
            busy = True
            if staged:
                self._submit(c, frame)
                self._start = (i + 1) % n  # the next camera has the next free slot first
            else:
                self._process(c, frame)
        return self._collect() or busy

    def wait(self, timeout: float) -> None:
        """Idle until an inference completes or `timeout` passes."""
        if self.stage is not None:
            self.stage.wait(timeout)
        else:
            time.sleep(timeout)

    def drain(self, timeout: float) -> None:
        """Finish the frames in flight (the worker is asked to stop: their
        counts are sent rather than lost), for at most `timeout` seconds."""
        if self.stage is None:
            return
        end = time.monotonic() + timeout
        while self.stage.pending() and time.monotonic() < end:
            self.stage.wait(min(0.05, max(end - time.monotonic(), 0.0)))
            self._collect()

    def close(self) -> None:
        if self.stage is not None:
            self.stage.stop()
        if self._cpus_before:
            pin_this_thread(self._cpus_before)

    def run_to_end(self, poll: float = 0.005) -> None:
        """Turn until every camera's file has ended and its frames are
        finished (counting a recording; tests; the benchmark). Cameras whose
        model failed to load are skipped."""
        while not all(c.finished_sent for c in self.cams if c.pipe is not None):
            if not self.turn(time.monotonic()):
                self.wait(poll)

    # --- steps --------------------------------------------------------------
    def _submit(self, c: Camera, frame: Any) -> None:
        try:
            job = c.pipe.prepare(frame.image, frame.t, captured=frame.captured, owner=c)
        except Exception as exc:  # noqa: BLE001 - a bad frame must not end the worker
            self._failed(c, exc)
            return
        self.stage.submit(job)  # type: ignore[union-attr]
        c.in_flight += 1

    def _process(self, c: Camera, frame: Any) -> None:
        taken = time.monotonic()
        try:
            ev = c.pipe.process(frame.image, frame.t)
        except Exception as exc:  # noqa: BLE001 - a bad frame must not end the worker
            self._failed(c, exc)
            return
        self._emit(c, ev, frame.captured, taken)

    def _collect(self) -> bool:
        if self.stage is None:
            return False
        jobs: list[Job] = self.stage.completed()
        for job in jobs:
            c: Camera = job.owner
            c.in_flight -= 1
            try:
                ev = c.pipe.finish(job)
            except Exception as exc:  # noqa: BLE001 - inference or decoding failed on this frame: the next one may not
                self._failed(c, exc)
                continue
            self._emit(c, ev, job.captured, job.taken)
        return bool(jobs)

    def _failed(self, c: Camera, exc: Exception) -> None:
        c.error = f"analysis failed: {exc}"
        self.log.error("camera %s: %s", c.cam.name, c.error)

    def _emit(self, c: Camera, ev: dict[str, Any], captured: float, taken: float) -> None:
        now = time.monotonic()
        c.analysed += 1
        c._fps_count += 1
        c.analysis_ms.append((now - taken) * 1000)
        name = c.cam.name
        for line, label, direction, _tid in ev["crossings"]:
            self.out.send(("count", name, line, label, direction, captured))
        for zone, value in ev["zones"].items():
            self.out.send(("zone", name, zone, value, captured))
        if ev["bins"] and now - c.last_bins >= _BIN_EVERY:
            c.last_bins = now
            for bin_name, (level, overflow) in ev["bins"].items():
                self.out.send(("bin", name, bin_name, level, overflow))
