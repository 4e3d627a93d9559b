"""Motion mode (no model) counting random traffic in which vehicles overtake
and pass each other, end to end: rendered street clips with exact ground
truth, MJPG files decoded by OpenCV, analysed by the spawned vision worker,
counts arriving as readings.

Two traffic levels on the same four-lane street (buses, trucks, cars and
bikes, a lamp post, a passing cloud). The limits asserted per clip are the
extremes measured over 16 clips of each level (seeds 101-116), given in
docs/vision.md with the totals: over those 16 clips both levels are counted
within 3 % per direction of the crossings a camera can see (over 48 unseen
dense clips the far lanes are 2.9 % short). A single 90 s clip holds 8 to 34
vehicles per direction, too few for 3 % to be a test: one vehicle is 3 to 12 %."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from agent.vision.config import CameraConfig, LineConfig
from hil_tests.emulators.scenes import StreetScene
from hil_tests.vision_support import Run, run_files, truth_counts

pytestmark = pytest.mark.slow  # about 20 s per test on 2 cores, most of it rendering the clips

LINE = LineConfig(name="centre", start=(0.5, 1.0), end=(0.5, 0.0))  # bottom->top: left->right is "in"
SEEDS = (101, 102)  # the first two of the 16 measured


def traffic(seed: int, per_lane_per_min: float) -> StreetScene:
    """90 s of Poisson traffic in four lanes. The road is empty when the
    camera starts: the counter learns the background in its first second."""
    scene = StreetScene.random(seed=seed, duration_s=90, fps=10, size=(480, 270), per_lane_per_min=per_lane_per_min)
    scene.vehicles = [v for v in scene.vehicles if v.t_enter >= 1.0]
    return scene


def by_direction(counts: Counter) -> Counter:
    """Readings {("vehicles_in", "line=centre"): n} or truth {("car", "in"): n} -> {"in": n, "out": n}."""
    out: Counter = Counter()
    for (first, second), n in counts.items():
        out[second if second in ("in", "out") else first.rsplit("_", 1)[1]] += n
    return out


def count_clips(folder: Path, per_lane_per_min: float, data_dir: str) -> tuple[Run, dict[str, Counter]]:
    """Render the clips, run them through the supervisor as motion cameras;
    returns the run and the true counts per camera, by direction."""
    cams, truth = [], {}
    for seed in SEEDS:
        scene = traffic(seed, per_lane_per_min)
        path = folder / f"traffic{seed}.avi"
        truths = scene.write_video(str(path))
        name = f"road{seed}"
        truth[name] = by_direction(truth_counts(scene, truths, scene.size[0] / 2))
        cams.append(CameraConfig(name=name, source=str(path), mode="motion", realtime=False, detect_fps=10, lines=[LINE], report_interval=3600))
    run = asyncio.run(run_files(cams, data_dir))
    for name in truth:
        assert run.status[name]["frames_dropped"] == 0
    return run, truth


def test_motion_counter_in_moderate_overtaking_traffic_is_within_two_vehicles_per_clip(tmp_path) -> None:
    # 20 vehicles a minute on four lanes: overtaking and passing in both directions
    run, truth = count_clips(tmp_path, 5.0, str(tmp_path))
    for name, want in truth.items():
        got = by_direction(run.counts(name))
        assert want["in"] >= 10 and want["out"] >= 10  # each clip has traffic both ways
        for d in ("in", "out"):
            assert abs(got[d] - want[d]) <= 2, (name, d, got, want)


def test_motion_counter_in_dense_traffic_stays_within_its_documented_limits(tmp_path) -> None:
    # 40 vehicles a minute: a far-lane car is often hidden by a nearer bus as it crosses
    run, truth = count_clips(tmp_path, 10.0, str(tmp_path))
    for name, want in truth.items():
        got = by_direction(run.counts(name))
        assert want["in"] >= 20 and want["out"] >= 20
        # measured over 16 clips: near lanes (in) -3..+2 vehicles per clip; far lanes (out), hidden more often: -3..+1
        assert -3 <= got["in"] - want["in"] <= 2, (name, got, want)
        assert -3 <= got["out"] - want["out"] <= 1, (name, got, want)
