"""Readings made from vision events: names, zeros, offline intervals, bays."""

from __future__ import annotations

import numpy as np

from agent.readings import OFFLINE
from agent.runtime.clock import Clock
from agent.vision.bays import BayReference
from agent.vision.config import CameraConfig, LineConfig, ZoneConfig
from agent.vision.report import CameraReport, plural

STAMP = Clock("assume").reading
SQUARE = [(0.1, 0.1), (0.4, 0.1), (0.4, 0.4), (0.1, 0.4)]


def camera(**kw) -> CameraConfig:
    return CameraConfig(name="cam1", source="/dev/video0", classes=["car", "bus"], lines=[LineConfig(name="l1", start=(0.5, 1), end=(0.5, 0))], **kw)


def test_metric_names_are_plural_snake_case() -> None:
    assert [plural(x) for x in ("car", "person", "bus", "bike", "traffic light")] == ["cars", "people", "buses", "bikes", "traffic_lights"]


def test_counts_per_class_and_direction_with_zeros() -> None:
    rep = CameraReport(camera())
    rep.count("l1", "car", "in")
    rep.count("l1", "car", "in")
    rep.count("l1", "bus", "out")
    rep.analysed_in_interval = 10
    got = {(r.metric, r.detail): r.value for r in rep.readings(STAMP)}
    assert got == {("cars_in", "line=l1"): 2, ("cars_out", "line=l1"): 0, ("buses_in", "line=l1"): 0, ("buses_out", "line=l1"): 1}
    rep.analysed_in_interval = 3
    assert {r.value for r in rep.readings(STAMP)} == {0}  # quiet interval: zeros, not nothing


def test_interval_without_analysed_frames_is_offline_not_zero() -> None:
    rep = CameraReport(camera())
    rep.last_error = "stream rtsp://cam lost; re-opening"
    out = rep.readings(STAMP)
    assert out and all(r.status == OFFLINE and r.value is None for r in out)
    assert "stream rtsp://cam lost" in out[0].detail and out[0].detail.startswith("line=l1")


def test_bays_give_occupied_and_free_spaces_zones_give_share() -> None:
    zones = [ZoneConfig(name="b1", kind="bay", polygon=SQUARE), ZoneConfig(name="b2", kind="bay", polygon=SQUARE), ZoneConfig(name="crossing", polygon=SQUARE)]
    rep = CameraReport(camera(zones=zones))
    rep.interval_start = 100.0
    rep.zone("b1", 1, 100.0)
    rep.zone("b2", 0, 100.0)
    rep.zone("crossing", 2, 100.0)
    rep.zone("crossing", 0, 130.0)
    rep.analysed_in_interval = 1
    got = {(r.metric, r.detail): r.value for r in rep.readings(STAMP, now=160.0)}
    assert got[("occupied", "bay=b1")] == 1 and got[("occupied", "bay=b2")] == 0
    assert got[("free_spaces", "area=parking")] == 1
    assert got[("zone_objects", "zone=crossing")] == 0
    assert got[("zone_occupancy", "zone=crossing")] == 50.0  # 30 of 60 s


def test_unknown_bay_state_gives_no_free_spaces_yet() -> None:
    zones = [ZoneConfig(name="b1", kind="bay", polygon=SQUARE), ZoneConfig(name="b2", kind="bay", polygon=SQUARE)]
    rep = CameraReport(camera(zones=zones))
    rep.zone("b1", 1, 1.0)
    metrics = {r.metric for r in rep.readings(STAMP)}
    assert "free_spaces" not in metrics and "occupied" in metrics


def test_reference_bay_ignores_brightness_but_sees_a_car() -> None:
    rng = np.random.default_rng(0)
    asphalt = np.clip(rng.normal(100, 8, (80, 60, 3)), 0, 255).astype(np.uint8)
    bay = BayReference(ZoneConfig(name="b", kind="bay", polygon=[(0, 0), (1, 0), (1, 1), (0, 1)], occupancy="reference"), asphalt)
    darker = (asphalt * 0.7).astype(np.uint8)
    assert bay.occupied(asphalt) == 0 and bay.occupied(darker) == 0
    car = asphalt.copy()
    car[10:70, 12:48] = (40, 40, 170)
    car[20:30, 15:45] = (30, 25, 25)  # windscreen
    assert bay.changed_share(car) > 0.4 and bay.occupied(car) == 1
