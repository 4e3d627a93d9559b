"""Bin fill level from empty/full references on synthetic container images."""

from __future__ import annotations

import numpy as np
import pytest

from agent.vision.bins import BinMonitor, ReferenceFillEstimator, save_reference
from agent.vision.config import BinConfig


def container(level: float, *, person: bool = False, gain: float = 1.0) -> np.ndarray:
    """A 120x80 container seen from the side: grey walls, waste rising from the bottom."""
    img = np.full((120, 80, 3), (90, 95, 100), np.uint8)
    rng = np.random.default_rng(1)
    top = int(round(120 * (1 - level / 100)))
    waste = rng.integers(0, 255, (120, 80, 3), dtype=np.uint8)
    waste[..., 1] = 60
    img[top:] = waste[top:]
    if person:
        img[:, 20:45] = (40, 30, 160)
    return np.clip(img.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def frame_with(region_img: np.ndarray) -> np.ndarray:
    frame = np.full((360, 640, 3), 128, np.uint8)
    frame[120:240, 320:400] = region_img
    return frame


REGION = (320 / 640, 120 / 360, 400 / 640, 240 / 360)


@pytest.mark.parametrize("level", [0, 10, 25, 50, 75, 90, 100])
def test_reference_estimator_reads_the_level(level: float) -> None:
    est = ReferenceFillEstimator(container(0), container(100))
    assert abs(est.estimate(container(level)) - level) <= 6


def test_estimator_tolerates_a_brightness_change() -> None:
    est = ReferenceFillEstimator(container(0), container(100))
    assert abs(est.estimate(container(50, gain=0.85)) - 50) <= 10


def test_identical_references_are_rejected_with_advice() -> None:
    with pytest.raises(ValueError, match="record them again"):
        ReferenceFillEstimator(container(0), container(0))


def test_monitor_records_references_smooths_and_flags_overflow(tmp_path) -> None:
    cfg = BinConfig(name="b1", region=REGION, smoothing=5, overflow_level=90)
    mon = BinMonitor(cfg, "cam", str(tmp_path))
    assert mon.estimator is None and "diag camera reference cam b1 empty" in mon.error
    save_reference(frame_with(container(0)), cfg, "cam", str(tmp_path), "empty")
    save_reference(frame_with(container(100)), cfg, "cam", str(tmp_path), "full")
    mon.reload()
    assert mon.error == ""
    for _ in range(4):
        mon.update(frame_with(container(40)))
    assert mon.level is None  # not enough estimates yet
    mon.update(frame_with(container(40, person=True)))  # a passer-by in one frame
    assert mon.level is not None and abs(mon.level - 40) <= 6 and mon.overflow is False
    for _ in range(5):
        mon.update(frame_with(container(100)))
    assert mon.level is not None and mon.level >= 94 and mon.overflow is True
