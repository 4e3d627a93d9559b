"""Technician snapshots: geometry drawn, people blurred when asked."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from agent.vision.config import CameraConfig, LineConfig
from agent.vision.pipeline import CameraPipeline


def pipeline_with_person(tmp_path) -> tuple[CameraPipeline, np.ndarray]:
    cam = CameraConfig(name="c", source="x", lines=[LineConfig(name="l", start=(0.5, 1), end=(0.5, 0))])
    boxes = np.array([[100.0, 60.0, 160.0, 200.0]])

    def detect(frame):
        return boxes, np.array([0.9]), ["person"]

    pipe = CameraPipeline(cam, str(tmp_path), detect)
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)  # sharp texture everywhere
    pipe.process(frame, 0.0)
    return pipe, frame


def sharpness(img: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


def test_snapshot_blurs_people_only_when_asked(tmp_path) -> None:
    from agent.vision.snapshot import render

    pipe, frame = pipeline_with_person(tmp_path)
    blurred = cv2.imdecode(np.frombuffer(render(pipe, blur_people=True, quality=95), np.uint8), cv2.IMREAD_COLOR)
    plain = cv2.imdecode(np.frombuffer(render(pipe, blur_people=False, quality=95), np.uint8), cv2.IMREAD_COLOR)
    inner = (slice(80, 180), slice(110, 150))  # inside the person's box, away from the drawn outline
    assert sharpness(blurred[inner]) < 0.1 * sharpness(plain[inner])
    # the rest of the picture is not blurred, and the line is drawn in the middle column
    assert sharpness(blurred[:, 200:]) > 0.5 * sharpness(plain[:, 200:])
    assert np.abs(plain[:, 160].astype(int) - frame[:, 160].astype(int)).mean() > 40


def test_snapshot_before_any_frame_says_what_to_do(tmp_path) -> None:
    from agent.vision.snapshot import render

    pipe = CameraPipeline(CameraConfig(name="c", source="x"), str(tmp_path), None)
    with pytest.raises(LookupError, match="diag status"):
        render(pipe, blur_people=True)
