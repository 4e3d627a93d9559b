"""Vehicle counting end to end on rendered street videos with exact ground
truth: MJPG files decoded by OpenCV, analysed by the spawned vision worker,
counts arriving as readings through the supervisor."""

from __future__ import annotations

import asyncio
import math
from collections import Counter

import pytest

from agent.vision.config import CameraConfig, LineConfig
from agent.vision.report import plural
from hil_tests.emulators.scenes import CLASSES, StreetScene
from hil_tests.vision_support import LineTruth, run_files, separated_traffic, truth_counts

pytestmark = pytest.mark.slow  # each test 20-40 s on 2 busy cores, most of it rendering the clips

LINE = LineConfig(name="centre", start=(0.5, 1.0), end=(0.5, 0.0))  # bottom->top: left->right is "in"


def within(got: int, truth: int, share: float = 0.03, floor: int = 0) -> bool:
    return abs(got - truth) <= max(share * truth, floor)


def clip_with_truth(scene, tmp_path_factory, name: str):
    """The scene written as a video, and its true line counts at the centre line."""
    path = tmp_path_factory.mktemp("clips") / name
    truths = scene.write_video(str(path))
    return path, truth_counts(scene, truths, scene.size[0] / 2)


@pytest.fixture(scope="module")
def separated_clip(tmp_path_factory):
    return clip_with_truth(separated_traffic(20, seed=11), tmp_path_factory, "separated.avi")


def test_motion_counter_counts_every_vehicle_in_the_right_direction(separated_clip, tmp_path) -> None:
    path, truth = separated_clip
    cam = CameraConfig(name="road", source=str(path), mode="motion", realtime=False, detect_fps=10, lines=[LINE], report_interval=3600)
    run = asyncio.run(run_files([cam], str(tmp_path)))
    got = run.counts("road")
    truth_in = sum(n for (_, d), n in truth.items() if d == "in")
    truth_out = sum(n for (_, d), n in truth.items() if d == "out")
    assert truth_in >= 8 and truth_out >= 8  # the clip exercises both directions
    assert within(got[("vehicles_in", "line=centre")], truth_in), (got, truth)
    assert within(got[("vehicles_out", "line=centre")], truth_out), (got, truth)
    assert run.status["road"]["frames_dropped"] == 0


# Poisson traffic in four lanes: overtaking (one car hiding another), a lamp
# post in front, all classes and their sizes and speeds, a passing cloud. Seed
# 22 is one of the clips docs/vision.md measures; 25 had the most class errors
# before track labels followed the vehicle at the line; 33 and 49 are denser
# (15 vehicles per lane per minute: more occlusions), and 49 had four errors
# before weak detections could no longer turn a track back over the line.
TRAFFIC = {"seed22": (22, 10.0), "seed25": (25, 10.0), "seed33_dense": (33, 15.0), "seed49_dense": (49, 15.0)}


@pytest.fixture(scope="module", params=sorted(TRAFFIC))
def random_traffic_clip(request, tmp_path_factory):
    seed, per_lane_per_min = TRAFFIC[request.param]
    scene = StreetScene.random(seed=seed, duration_s=50, fps=10, size=(640, 360), per_lane_per_min=per_lane_per_min)
    path = tmp_path_factory.mktemp("clips") / f"{request.param}.avi"
    truths = scene.write_video(str(path))
    w, h = scene.size
    # analysed at 5 fps from a 10 fps file: every second frame; the line's dead band is 2 % of the diagonal
    return path, LineTruth(scene, truths, w / 2, every=2, band=LINE.hysteresis * math.hypot(w, h))


def test_shipped_vehicle_model_counts_random_traffic_by_class_and_direction(random_traffic_clip, tmp_path) -> None:
    path, truth = random_traffic_clip
    cam = CameraConfig(name="road", source=str(path), model="vehicle_tiny", realtime=False, detect_fps=5, lines=[LINE], report_interval=3600)
    run = asyncio.run(run_files([cam], str(tmp_path)))
    assert run.status["road"]["model"] == "vehicle_tiny"
    keys = [(label, d) for label in CLASSES for d in ("in", "out")]
    counted = run.counts("road")
    got = Counter({(label, d): counted[(f"{plural(label)}_{d}", "line=centre")] for label, d in keys})
    assert sum(got.values()) == sum(counted.values()), counted  # every count is one of the four classes
    directions = Counter(d for label, d in truth.required.elements())
    assert directions["in"] >= 10 and directions["out"] >= 10  # the clip exercises both directions
    report = {
        f"{label}_{d}": (got[(label, d)], truth.required[(label, d)], truth.optional[(label, d)])
        for label, d in keys
        if got[(label, d)] or (label, d) in truth.keys()
    }
    # each class and direction within 3 %, or one vehicle: on a 50 s clip 3 % of a class is less than one
    # vehicle (docs/vision.md gives the figures over several clips)
    for key in keys:
        assert truth.error(key, got[key]) <= max(0.03 * truth.required[key], 1), report
    # and all of them together: within 3 % of the clip's vehicles, or one
    total_error = sum(truth.error(key, got[key]) for key in keys)
    assert total_error <= max(0.03 * sum(truth.required.values()), 1), report
