"""Footfall on a real street video (vtest.avi, pedestrians) with the real
person model, through the spawned worker: people_in / people_out readings."""

from __future__ import annotations

import asyncio

import pytest

from agent.vision.config import CameraConfig, LineConfig
from hil_tests.vision_support import MEDIA, run_files

pytestmark = pytest.mark.slow  # about 40 s on 2 busy cores: 160 inferences of the person model


def test_vtest_footfall_counts_people_both_ways(tmp_path) -> None:
    # a vertical line across the footpath in the middle of the view
    line = LineConfig(name="path", start=(0.5, 0.75), end=(0.5, 0.2))
    cam = CameraConfig(
        name="square",
        source=str(MEDIA / "vtest.avi"),
        model="person_ssdlite",
        classes=["person"],
        realtime=False,
        detect_fps=2,
        lines=[line],
        report_interval=3600,
    )
    run = asyncio.run(run_files([cam], str(tmp_path)))
    got = run.counts("square")
    st = run.status["square"]
    assert st["model"] == "person_ssdlite" and st["frames_analysed"] >= 155  # 795 frames at 10 fps, every 5th
    # people walk both ways along the path; the clip has about a dozen crossings
    assert got[("people_in", "line=path")] >= 2, got
    assert got[("people_out", "line=path")] >= 2, got
    assert sum(got.values()) <= 30, got  # no count explosion from flicker or id switches
    units = {r.unit for r in run.readings if r.metric.startswith("people_")}
    assert units == {"{count}"}
