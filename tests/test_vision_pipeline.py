"""The worker's camera path with overlapped stages (inference on its own
thread, preparing and finishing on the main thread) against the serial path:
same crossings and zone changes on a rendered clip with the shipped model,
errors reported as the camera's error, a hung inference stopping the
heartbeat, bounded hand-offs and a clean stop."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from agent.vision.affinity import cpu_plan
from agent.vision.config import CameraConfig, LineConfig, VisionConfig, ZoneConfig
from agent.vision.scheduler import Camera, Scheduler
from agent.vision.stages import InferenceStage, Job
from agent.vision.worker import build_cameras
from hil_tests.emulators.scenes import StreetScene
from hil_tests.vision_support import Heartbeat, WorkerOutput

REPO = Path(__file__).resolve().parents[1]
VISION = VisionConfig(models_dir=str(REPO / "edge_models"))
LINE = LineConfig(name="centre", start=(0.5, 1.0), end=(0.5, 0.0))
LEFT = ZoneConfig(name="left", polygon=[(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)], debounce=0.5)
LOG = logging.getLogger("test.vision.pipeline")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clips") / "street.avi"
    StreetScene.random(seed=22, duration_s=15, fps=10, size=(640, 360), per_lane_per_min=12).write_video(str(path))
    return path


def camera(name: str, clip: Path, **kw) -> CameraConfig:
    kw.setdefault("realtime", False)
    return CameraConfig(name=name, source=str(clip), model="vehicle_tiny", lines=[LINE], zones=[LEFT], report_interval=3600, **kw)


def run_to_end(cfgs: list[CameraConfig], data_dir: str, *, overlap: bool) -> tuple[WorkerOutput, list[Camera]]:
    """Every frame of the cameras' files through the worker's path, CPUs split as the worker splits them."""
    cams = build_cameras(VISION, cfgs, data_dir, LOG, Heartbeat())
    out = WorkerOutput()
    sched = Scheduler(cams, out, LOG, overlap=overlap, pin=True)
    for c in cams:
        c.source.start()
    try:
        sched.run_to_end()
        plan = cpu_plan(1)
        if overlap and plan is not None:  # a machine with two CPUs or more
            assert os.sched_getaffinity(sched.stage._thread.native_id) == plan.inference
            assert os.sched_getaffinity(0) == plan.rest
    finally:
        sched.close()
        for c in cams:
            c.source.stop()
    return out, cams


def test_overlapped_stages_count_exactly_what_the_serial_path_counts(clip, tmp_path) -> None:
    # two cameras on one model (one shared session), analysed at different rates so their frames interleave
    cfgs = [camera("fast", clip, detect_fps=10), camera("slow", clip, detect_fps=5)]
    serial, _ = run_to_end(cfgs, str(tmp_path), overlap=False)
    piped, cams = run_to_end(cfgs, str(tmp_path), overlap=True)
    assert cams[0].pipe.detect is cams[1].pipe.detect  # one session for both cameras
    for name, frames in (("fast", 150), ("slow", 75)):
        got = piped.events(name)
        assert got == serial.events(name)
        counted = Counter(m[3:5] for m in got if m[0] == "count")
        assert sum(counted.values()) >= 10 and {d for _, d in counted} == {"in", "out"}, counted
        assert any(m[0] == "zone" for m in got)
        assert next(c for c in cams if c.cam.name == name).analysed == frames
    assert {m[1] for m in piped.msgs if m[0] == "finished"} == {"fast", "slow"}


@pytest.mark.parametrize("overlap", [False, True])
def test_an_inference_error_is_the_cameras_error_and_the_next_frames_go_on(clip, tmp_path, caplog, overlap) -> None:
    cams = build_cameras(VISION, [camera("road", clip, detect_fps=5)], str(tmp_path), LOG, Heartbeat())
    model = cams[0].pipe.detect
    run, calls = model.infer, []

    def infer(tensor):
        calls.append(1)
        if len(calls) == 10:
            raise RuntimeError("onnxruntime: bad input on frame 10")
        return run(tensor)

    model.infer = infer
    out = WorkerOutput()
    sched = Scheduler(cams, out, LOG, overlap=overlap)
    cams[0].source.start()
    with caplog.at_level(logging.ERROR, logger=LOG.name):
        try:
            sched.run_to_end()
        finally:
            sched.close()
            cams[0].source.stop()
    stats = cams[0].stats(time.monotonic())
    assert stats["error"] == "analysis failed: onnxruntime: bad input on frame 10"
    assert "camera road: analysis failed: onnxruntime: bad input on frame 10" in caplog.text
    assert stats["frames_analysed"] == 75 - 1
    assert ("finished", "road") in out.msgs


def blocked_job(release: threading.Event, started: threading.Event, tag: int = 0) -> Job:
    def run(tensor):
        started.set()
        release.wait()
        return [tensor]

    return Job(None, None, float(tag), 0.0, None, None, run, time.monotonic(), 0.0)  # type: ignore[arg-type]


def test_a_hung_inference_holds_the_heartbeat_at_its_start() -> None:
    stage = InferenceStage(depth=1)
    release, started = threading.Event(), threading.Event()
    try:
        before = time.monotonic()
        stage.submit(blocked_job(release, started))
        assert started.wait(10)
        later = time.monotonic() + 3600.0  # however long the main loop keeps turning
        beat = stage.heartbeat(later)
        assert before <= beat <= time.monotonic()
        release.set()
        for _ in range(1000):
            if stage.completed():
                break
            stage.wait(0.01)
        assert stage.heartbeat(later) == later  # idle again: the loop's own time
    finally:
        release.set()
        stage.stop()


def test_the_hand_off_is_bounded_and_runs_in_order() -> None:
    stage = InferenceStage(depth=1)
    release, started = threading.Event(), threading.Event()
    try:
        stage.submit(blocked_job(release, started, 1))
        assert started.wait(10)
        stage.submit(blocked_job(release, threading.Event(), 2))
        assert not stage.has_room()
        with pytest.raises(RuntimeError, match="full"):
            stage.submit(blocked_job(release, threading.Event(), 3))
        assert stage.pending() == 2
        release.set()
        done: list[Job] = []
        for _ in range(1000):
            done += stage.completed()
            if len(done) == 2:
                break
            stage.wait(0.01)
        assert [j.t for j in done] == [1.0, 2.0]
    finally:
        release.set()
        stage.stop()


def test_a_camera_faster_than_its_model_drops_frames_at_the_reader_not_in_the_worker(clip, tmp_path) -> None:
    """A live camera while inference is stuck: the worker holds at most one
    frame in inference and one waiting; the reader keeps only the newest and
    counts what it overwrote. Once inference is back, the frames in flight
    are finished and a stop leaves none behind."""
    cams = build_cameras(VISION, [camera("live", clip, realtime=True, loop=True, detect_fps=10)], str(tmp_path), LOG, Heartbeat())
    c = cams[0]
    model = c.pipe.detect
    run, release = model.infer, threading.Event()

    def infer(tensor):
        release.wait()
        return run(tensor)

    model.infer = infer
    out = WorkerOutput()
    sched = Scheduler(cams, out, LOG, overlap=True)
    c.source.start()
    try:
        for _ in range(2000):
            sched.turn(time.monotonic())
            assert sched.stage.pending() <= 2 and c.in_flight <= 2
            if c.source.frames_dropped >= 5:
                break
            sched.wait(0.005)
        assert c.source.frames_dropped >= 5 and c.in_flight == 2
        release.set()
        for _ in range(2000):
            sched.turn(time.monotonic())
            if c.analysed >= 5:
                break
            sched.wait(0.005)
        assert c.analysed >= 5
        assert c.missed > 0  # the slots that passed while inference was stuck
        sched.drain(5.0)
        assert c.in_flight == 0 and sched.stage.pending() == 0
    finally:
        release.set()
        sched.close()
        c.source.stop()


@pytest.mark.parametrize("scale", [1 / 255, 1.0, 1 / 127.5])
@pytest.mark.parametrize("rgb", [True, False])
def test_scale_only_tensors_hold_the_values_blob_from_image_gives_for_every_pixel_value(scale, rgb) -> None:
    """The worker's fast path for float inputs without mean or std must feed
    the model exactly what OpenCV's blobFromImage did."""
    import cv2
    import numpy as np

    from agent.vision.preprocess import to_tensor

    img = np.random.default_rng(3).permutation(np.arange(256 * 3, dtype=np.int64) % 256).astype(np.uint8).reshape(16, 16, 3)
    got = to_tensor(img, rgb=rgb, layout="NCHW", dtype="float32", scale=scale, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    want = cv2.dnn.blobFromImage(img, scale, mean=(0.0, 0.0, 0.0), swapRB=rgb)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got, want)
