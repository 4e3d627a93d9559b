"""Bin fill levels end to end: an IP camera (MJPEG over HTTP on loopback)
above three containers. The install-time references are recorded through
the supervisor's `record_reference` (what `diag camera reference` calls)
while the camera shows the containers empty, then full; then the containers
are at known levels, with people walking past, and the readings must say so."""

from __future__ import annotations

import asyncio
import os

import cv2
import numpy as np
import pytest

from agent.readings import Reading
from agent.vision.bins import ReferenceFillEstimator, crop
from agent.vision.config import BinConfig, CameraConfig
from hil_tests.emulators.mjpeg_server import MjpegServer
from hil_tests.emulators.scenes import BinScene, BinSpec, Walker
from hil_tests.vision_support import supervisor

pytestmark = pytest.mark.slow  # about 25 s on 2 busy cores

LEVELS = {"bin1": 0.2, "bin2": 0.6, "bin3": 0.97}
STEP = 0.05


def floor_scale(scene: BinScene, name: str) -> float:
    """What the installer measures on the snapshot of the empty container:
    the size of the floor that is visible, relative to the opening."""
    reg = scene.region(name, normalised=True)
    empty = scene.render_levels({b.name: 0.0 for b in scene.bins}, noise=False)
    full = scene.render_levels({b.name: 1.0 for b in scene.bins}, noise=False)
    thin_layer = scene.render_levels({b.name: 0.0 for b in scene.bins} | {name: 0.01}, noise=False)
    return ReferenceFillEstimator(crop(empty, reg), crop(full, reg)).covered(crop(thin_layer, reg)) ** 0.5


def test_fill_levels_and_overflow_from_recorded_references(tmp_path) -> None:
    specs = [
        BinSpec("bin1", x=-2.0, y=0.0, levels=((0, LEVELS["bin1"]),)),
        BinSpec("bin2", x=0.0, y=0.3, levels=((0, LEVELS["bin2"]),), colour=(150, 90, 30)),
        BinSpec("bin3", x=2.0, y=-0.2, levels=((0, LEVELS["bin3"]),), colour=(40, 40, 40)),
    ]
    scene = BinScene(specs, duration_s=8, fps=5, walkers=[Walker(100, y=0.1, t0=1.0, speed=3.0)])
    levels_clip = [scene.render(i)[0] for i in range(scene.n_frames)]
    empty = [scene.render_levels({b.name: 0.0 for b in specs}, index=i) for i in range(3)]
    full = [scene.render_levels({b.name: 1.0 for b in specs}, index=i) for i in range(3)]
    bins = [
        BinConfig(name=b.name, region=scene.region(b.name, normalised=True), floor_scale=round(floor_scale(scene, b.name), 2), overflow_level=90, smoothing=5)
        for b in specs
    ]
    readings: list[Reading] = []
    with MjpegServer(empty, fps=5) as camera:
        cam = CameraConfig(name="depot", source=camera.url, detect_fps=5, bins=bins, report_interval=3600)
        vs = supervisor([cam], str(tmp_path), readings)

        async def analysed_more(n: int) -> None:
            start = vs.status()["depot"].get("frames_analysed", 0)
            for _ in range(int(60 / STEP)):
                if vs.status()["depot"].get("frames_analysed", 0) >= start + n:
                    return
                await asyncio.sleep(STEP)
            raise AssertionError(f"camera stopped: {vs.status()}")

        async def scenario() -> None:
            task = asyncio.create_task(vs.run())
            try:
                for _ in range(int(60 / STEP)):
                    if vs.worker_ready and vs.status()["depot"].get("frames_analysed", 0) >= 3:
                        break
                    await asyncio.sleep(STEP)
                assert "diag camera reference depot bin1 empty" in vs.status()["depot"]["reference_errors"]["bin1"]
                for b in specs:
                    path = await vs.record_reference("depot", b.name, "empty")
                    assert os.path.exists(path)
                camera.set_frames(full)
                await analysed_more(8)
                for b in specs:
                    path = await vs.record_reference("depot", b.name, "full")
                    ref = cv2.imread(path)
                    assert ref is not None and ref.shape[0] > 20  # the region, not the whole frame
                camera.set_frames(levels_clip)
                await analysed_more(25)
                vs.flush()
                assert vs.status()["depot"]["reference_errors"] == {}
            finally:
                await vs.close()
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

        asyncio.run(scenario())

    def latest(metric: str, name: str):
        vals = [r.value for r in readings if r.metric == metric and r.detail == f"bin={name}"]
        assert vals, (metric, name, readings)
        return vals[-1]

    for name, level in LEVELS.items():
        got = latest("fill_level", name)
        assert abs(got - 100 * level) <= 10, (name, got, level)
        assert latest("overflow", name) is (level * 100 >= 90)
    assert {r.unit for r in readings if r.metric == "fill_level"} == {"%"}
    assert np.isfinite([r.value for r in readings if r.metric == "fill_level"]).all()
