"""Parking occupancy end to end, without a model: bays compared with their
empty references (recorded at install time from the empty lot), on a
rendered car park where cars arrive, park and leave, driving past other bays
and under changing light. Every arrival and departure must be reported once,
after the debounce, and the free spaces must match the truth."""

from __future__ import annotations

import asyncio

import pytest

from agent.vision.bays import bay_box, reference_path
from agent.vision.bins import save_region
from agent.vision.config import CameraConfig, ZoneConfig
from hil_tests.emulators.scenes import Lighting, ParkingScene, Stay
from hil_tests.vision_support import run_files

STAYS = [
    Stay(1, "A2", t_arrive=-1, t_leave=12),
    Stay(2, "B4", t_arrive=-1, t_leave=1e9),
    Stay(3, "A4", t_arrive=6, t_leave=26),
    Stay(4, "B1", t_arrive=10, t_leave=1e9),
    Stay(5, "A2", t_arrive=22, t_leave=1e9),
    Stay(6, "B3", t_arrive=16, t_leave=30),
]

pytestmark = pytest.mark.slow  # about 30 s on 2 busy cores (rendering the clip is most of it)


def collapse(seq: list) -> list:
    return [v for i, v in enumerate(seq) if i == 0 or v != seq[i - 1]]


def test_bays_free_and_occupied_follow_the_truth(tmp_path) -> None:
    lighting = Lighting(((0, 1.0), (15, 0.75), (30, 1.05)), noise_sigma=2.0)
    scene = ParkingScene(STAYS, duration_s=34, fps=5, size=(480, 270), seed=4, lighting=lighting)
    truths = scene.write_video(str(tmp_path / "lot.avi"))
    empty_lot = ParkingScene([], duration_s=1, fps=5, size=(480, 270), seed=4).render(0)[0]
    bays = [
        ZoneConfig(name=n.lower(), kind="bay", area="lot", polygon=p, occupancy="reference", debounce=2.0)
        for n, p in scene.bay_polygons(normalised=True).items()
    ]
    for z in bays:  # the install step: the lot photographed empty
        save_region(empty_lot, bay_box(z), reference_path(z, "lot-cam", str(tmp_path)))
    cam = CameraConfig(name="lot-cam", source=str(tmp_path / "lot.avi"), mode="motion", realtime=False, detect_fps=5, zones=bays, report_interval=3600)

    seen: dict[str, list[int]] = {z.name: [] for z in bays}

    async def go():
        from hil_tests import vision_support

        orig = vision_support.VisionSupervisor.__init__

        def spy_init(self, *a, **kw):  # record every debounced change the supervisor receives
            orig(self, *a, **kw)
            rep = self.reports["lot-cam"]
            zone = rep.zone

            def record(name, value, mono):
                seen[name].append(value)
                zone(name, value, mono)

            rep.zone = record

        vision_support.VisionSupervisor.__init__ = spy_init
        try:
            return await run_files([cam], str(tmp_path))
        finally:
            vision_support.VisionSupervisor.__init__ = orig

    run = asyncio.run(go())
    for z in bays:
        truth = collapse([int(t.occupancy[z.name.upper()]) for t in truths])
        assert collapse(seen[z.name]) == truth, (z.name, seen[z.name], truth)
    free_truth = sum(1 for v in truths[-1].occupancy.values() if not v)
    assert run.latest("free_spaces", "area=lot") == free_truth
    assert run.latest("occupied", "bay=b4") == 1 and run.latest("occupied", "bay=a5") == 0
