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
every turn, or to the start of the inference in progress (which runs on its
own thread, agent.vision.stages), so a loop stuck in a decoder and an
inference that never returns are both caught.

Inside, the main thread prepares and finishes frames while the inference
thread runs the models (agent.vision.scheduler says which frame goes where).
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import time
from typing import Any

from agent.vision.config import CameraConfig, VisionConfig
from agent.vision.scheduler import Camera, Scheduler

_STATS_EVERY = 1.0  # seconds
_DRAIN_ON_STOP = 0.5  # seconds to finish the frames in flight when asked to stop
_SWITCH_INTERVAL = 0.0005  # seconds


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
    tune_process(vcfg)
    cams = build_cameras(vcfg, [CameraConfig.model_validate(c) for c in cameras], data_dir, log, heartbeat)
    out.send(("ready", {c.cam.name: {"model": c.pipe.info.get("model") if c.pipe else None, "error": c.error} for c in cams}))
    sched = Scheduler(cams, out, log, pin=True, onnx_threads=vcfg.onnx_threads)
    for c in cams:
        c.source.start()  # the readers run on the main thread's CPUs
    try:
        _loop(sched, out, commands, heartbeat, parent, data_dir, log)
    finally:
        sched.close()
        for c in cams:
            c.source.stop(0.5)


def tune_process(vcfg: VisionConfig) -> None:
    """Threading settings of the worker process (also used by the benchmark)."""
    import cv2

    # OpenCV's own thread pool (resize, colour conversion) would compete with
    # onnxruntime's threads; one budget for both keeps the agent's core free
    cv2.setNumThreads(vcfg.onnx_threads)
    # The inference thread needs the interpreter lock for a moment after each
    # run; with Python's default 5 ms switch interval it could wait that long
    # behind the main thread's tracking, longer than the whole run of a small
    # model.
    sys.setswitchinterval(_SWITCH_INTERVAL)


def build_cameras(vcfg: VisionConfig, cameras: list[CameraConfig], data_dir: str, log: logging.Logger, heartbeat: Any) -> list[Camera]:
    """Sources and analysis of the enabled cameras, one model session shared
    by the cameras that use the same model."""
    from agent.vision.pipeline import CameraPipeline, model_detector
    from agent.vision.sources import FrameSource

    loaded: dict[tuple[str, float], Any] = {}  # one session per model, shared by cameras
    cams: list[Camera] = []
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
        c = Camera(cam, FrameSource(cam, log), pipe)
        c.error = error
        cams.append(c)
    return cams


def _loop(sched: Scheduler, out: _Out, commands: Any, heartbeat: Any, parent: int, data_dir: str, log: logging.Logger) -> None:
    last_stats = 0.0
    while True:
        now = time.monotonic()
        heartbeat.value = sched.heartbeat(now)
        if os.getppid() != parent:
            return  # the agent died: do not linger as an orphan holding the camera
        if not _commands(sched.cams, out, commands, data_dir, log):
            sched.drain(_DRAIN_ON_STOP)
            return
        busy = sched.turn(now)
        if now - last_stats >= _STATS_EVERY:
            last_stats = now
            out.send(("stats", {c.cam.name: c.stats(now) for c in sched.cams}, out.dropped))
        if not busy:
            sched.wait(0.005)


def _commands(cams: list[Camera], out: _Out, commands: Any, data_dir: str, log: logging.Logger) -> bool:
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


def _record_reference(c: Camera, name: str, which: str, data_dir: str) -> str:
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
