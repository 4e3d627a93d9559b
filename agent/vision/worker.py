"""The vision worker: ONE process for all cameras.

Why a process: inference holds the CPU for tens of milliseconds at a time and
onnxruntime or a video decoder can crash or hang on a bad stream. In its own
process none of that can stall or kill the agent's event loop, which keeps
reading meters and syncing. The agent (agent.vision.supervisor) starts it with
multiprocessing 'spawn' (no fork of an asyncio process with threads), watches
its heartbeat and restarts it.

Why one for all cameras: a Pi has 2-4 cores and 1-4 GB; one onnxruntime
session per model and one interpreter, not one per camera.

Protocol (tuples over bounded multiprocessing queues; a full result queue
drops the message and counts it, the worker never blocks on the agent):
  worker -> agent: ("ready", {camera: info}), ("count", camera, line, label,
    direction, captured_mono), ("zone", camera, zone, value, mono),
    ("bin", camera, bin, level, overflow), ("stats", {camera: stats}, dropped),
    ("log", level, message), ("reply", request_id, ok, payload),
    ("finished", camera)
  agent -> worker: ("snapshot", request_id, camera, blur_people),
    ("reference", request_id, camera, bin, "empty"|"full"), ("stop",)
The heartbeat is a shared double the main loop sets to time.monotonic() on
every turn, so a loop stuck in inference or in a decoder is caught.
"""

from __future__ import annotations

import logging
import os
import queue
import time
from typing import Any

from agent.vision.config import CameraConfig, VisionConfig

_STATS_EVERY = 1.0  # seconds
_BIN_EVERY = 1.0


class _Out:
    """Non-blocking sender that counts what it had to drop."""

    def __init__(self, q: Any) -> None:
        self.q = q
        self.dropped = 0

    def send(self, msg: tuple) -> None:
        try:
            self.q.put_nowait(msg)
        except queue.Full:
            self.dropped += 1


class _QueueLog(logging.Handler):
    def __init__(self, out: _Out) -> None:
        super().__init__(logging.INFO)
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        self.out.send(("log", record.levelno, record.getMessage()))


class _Camera:
    def __init__(self, cam: CameraConfig, source: Any, pipe: Any) -> None:
        self.cam = cam
        self.source = source
        self.pipe = pipe
        self.period = 1.0 / cam.detect_fps
        self.next_due = time.monotonic()
        self.missed = 0  # detection slots missed because the worker was busy
        self.analysed = 0
        self.finished_sent = False
        self.error = ""
        self._fps_count = 0
        self._fps_since = time.monotonic()
        self.fps = 0.0
        self.last_bins: float = 0.0

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
            "tracks": sum(1 for t in p.tracks if t.confirmed) if p else 0,
            "reference_errors": p.reference_errors() if p else {},
            "error": self.error or self.source.last_error,
        }


def worker_main(cameras: list[dict], vision: dict, data_dir: str, results: Any, commands: Any, heartbeat: Any) -> None:
    """Entry point of the spawned process."""
    out = _Out(results)
    log = logging.getLogger("vision.worker")
    log.addHandler(_QueueLog(out))
    log.setLevel(logging.INFO)
    log.propagate = False
    heartbeat.value = time.monotonic()
    parent = os.getppid()
    vcfg = VisionConfig.model_validate(vision)
    import cv2

    # OpenCV's own thread pool (resize, colour conversion) would compete with
    # onnxruntime's threads; one budget for both keeps the agent's core free
    cv2.setNumThreads(vcfg.onnx_threads)
    cams = _build(vcfg, [CameraConfig.model_validate(c) for c in cameras], data_dir, log, heartbeat)
    out.send(("ready", {c.cam.name: {"model": c.pipe.info.get("model") if c.pipe else None, "error": c.error} for c in cams}))
    for c in cams:
        c.source.start()
    try:
        _loop(cams, out, commands, heartbeat, parent, data_dir, log)
    finally:
        for c in cams:
            c.source.stop(0.5)


def _build(vcfg: VisionConfig, cameras: list[CameraConfig], data_dir: str, log: logging.Logger, heartbeat: Any) -> list[_Camera]:
    from agent.vision.pipeline import CameraPipeline, model_detector
    from agent.vision.sources import FrameSource

    loaded: dict[tuple[str, float], Any] = {}  # one session per model, shared by cameras
    cams: list[_Camera] = []
    for cam in cameras:
        if not cam.enabled:
            continue
        detect, info, error = None, {}, ""
        if cam.mode == "detector" and (cam.lines or cam.zones):
            try:
                key = (cam.model, cam.tracker.low_score)
                if key not in loaded:
                    loaded[key] = model_detector(cam, vcfg)
                detect, info = loaded[key]
            except Exception as exc:  # noqa: BLE001 - one bad model must not stop the other cameras
                error = f"model {cam.model!r} failed to load: {exc}"
                log.error("camera %s: %s", cam.name, error)
            heartbeat.value = time.monotonic()
        pipe = CameraPipeline(cam, data_dir, detect, info) if not error else None
        c = _Camera(cam, FrameSource(cam, log), pipe)
        c.error = error
        cams.append(c)
    return cams


def _loop(cams: list[_Camera], out: _Out, commands: Any, heartbeat: Any, parent: int, data_dir: str, log: logging.Logger) -> None:
    last_stats = 0.0
    while True:
        now = time.monotonic()
        heartbeat.value = now
        if os.getppid() != parent:
            return  # the agent died: do not linger as an orphan holding the camera
        if not _commands(cams, out, commands, data_dir, log):
            return
        busy = False
        for c in cams:
            if c.pipe is None:
                continue
            if c.source.finished:
                if not c.finished_sent:
                    out.send(("stats", {x.cam.name: x.stats(now) for x in cams}, out.dropped))
                    out.send(("finished", c.cam.name))
                    c.finished_sent = True
                continue
            if not c.due(now):
                continue
            frame = c.source.take()
            if frame is None:
                continue
            c.advance(now)
            try:
                ev = c.pipe.process(frame.image, frame.t)
            except Exception as exc:  # noqa: BLE001 - a bad frame must not end the worker
                c.error = f"analysis failed: {exc}"
                log.error("camera %s: %s", c.cam.name, c.error)
                continue
            c.analysed += 1
            c._fps_count += 1
            busy = True
            for line, label, direction, _tid in ev["crossings"]:
                out.send(("count", c.cam.name, line, label, direction, frame.captured))
            for zone, value in ev["zones"].items():
                out.send(("zone", c.cam.name, zone, value, frame.captured))
            if ev["bins"] and now - c.last_bins >= _BIN_EVERY:
                c.last_bins = now
                for name, (level, overflow) in ev["bins"].items():
                    out.send(("bin", c.cam.name, name, level, overflow))
        if now - last_stats >= _STATS_EVERY:
            last_stats = now
            out.send(("stats", {c.cam.name: c.stats(now) for c in cams}, out.dropped))
        if not busy:
            time.sleep(0.005)


def _commands(cams: list[_Camera], out: _Out, commands: Any, data_dir: str, log: logging.Logger) -> bool:
    """Serve pending requests; False when asked to stop."""
    from agent.vision import snapshot

    while True:
        try:
            cmd = commands.get_nowait()
        except queue.Empty:
            return True
        if cmd[0] == "stop":
            return False
        req = cmd[1]
        by_name = {c.cam.name: c for c in cams}
        try:
            c = by_name.get(cmd[2])
            if c is None or c.pipe is None:
                raise LookupError(f"camera {cmd[2]!r} is not running in the vision worker; check its name and `edge-agent diag status`")
            if cmd[0] == "snapshot":
                payload: Any = snapshot.render(c.pipe, blur_people=bool(cmd[3]))
            elif cmd[0] == "reference":
                payload = _record_reference(c, cmd[3], cmd[4], data_dir)
                c.pipe.reload_reference(cmd[3])
                log.info("camera %s: %s reference of %s saved to %s", c.cam.name, cmd[4], cmd[3], payload)
            else:
                raise ValueError(f"unknown request {cmd[0]!r}")
            out.send(("reply", req, True, payload))
        except Exception as exc:  # noqa: BLE001 - the requester gets the error, the worker goes on
            out.send(("reply", req, False, str(exc)))


def _record_reference(c: _Camera, name: str, which: str, data_dir: str) -> str:
    """Save the region of a bin (empty or full) or a reference bay (empty)
    from the last analysed frame."""
    from agent.vision.bays import bay_box, reference_path
    from agent.vision.bins import save_reference, save_region

    image = c.pipe.last_image
    if image is None:
        raise LookupError(f"camera {c.cam.name!r} has not delivered a frame yet; check its status")
    bins = {b.name: b for b in c.cam.bins}
    if name in bins:
        return save_reference(image, bins[name], c.cam.name, data_dir, which)
    bays = {z.name: z for z in c.cam.zones if z.occupancy == "reference"}
    if name in bays:
        if which != "empty":
            raise ValueError(f"bay {name!r} needs only an empty reference; record it while the bay is free")
        return save_region(image, bay_box(bays[name]), reference_path(bays[name], c.cam.name, data_dir))
    known = list(bins) + list(bays)
    raise LookupError(f"camera {c.cam.name!r} has no bin or reference bay {name!r}; configured: {', '.join(known) or 'none'}")
