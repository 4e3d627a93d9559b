"""The scene renderers: deterministic pixels, truth that matches the pixels,
videos OpenCV can read back."""

from __future__ import annotations

import cv2
import numpy as np

from hil_tests.emulators.scenes import (
    BinScene,
    BinSpec,
    Lighting,
    ParkingScene,
    Stay,
    StreetScene,
    load_truth,
    make_vehicle,
    save_truth,
)


def two_way_street(seed: int = 1, **kw) -> StreetScene:
    vs = [
        make_vehicle(1, "car", lane=0, t_enter=0.0, speed=12.0),
        make_vehicle(2, "bus", lane=2, t_enter=0.5, speed=9.0),
        make_vehicle(3, "truck", lane=1, t_enter=0.2, speed=7.0),
        make_vehicle(4, "bike", lane=3, t_enter=1.0, speed=5.0),
    ]
    return StreetScene(vs, duration_s=6, fps=10, seed=seed, lighting=Lighting(noise_sigma=0.0), **kw)


def test_same_seed_same_pixels_and_frames_render_independently():
    a, b = two_way_street(), two_way_street()
    img_a, tr_a = a.render(20)
    list(b.frames())  # rendering others first must not change frame 20
    img_b, tr_b = b.render(20)
    assert np.array_equal(img_a, img_b) and tr_a == tr_b


def test_truth_boxes_cover_the_drawn_vehicle():
    scene = StreetScene([make_vehicle(1, "car", lane=0, t_enter=0.0, speed=10.0)], duration_s=3, fps=10, lighting=Lighting(noise_sigma=0.0), pole_x=None)
    empty = StreetScene([], duration_s=3, fps=10, lighting=Lighting(noise_sigma=0.0), pole_x=None)
    img, truth = scene.render(12)
    bg, _ = empty.render(12)
    (car,) = truth.objects
    assert car.label == "car" and car.direction == 1 and car.visible > 0.95
    diff = img.astype(int) - bg.astype(int)
    changed = np.abs(diff).sum(axis=2) > 30
    x1, y1, x2, y2 = (int(round(v)) for v in car.box)
    outside = changed.copy()
    outside[max(y1 - 1, 0) : y2 + 1, max(x1 - 1, 0) : x2 + 1] = False
    # Changed pixels outside the box are the ground shadow (darker), never vehicle.
    assert (diff[outside].sum(axis=1) < 0).all()
    assert changed[y1:y2, x1:x2].mean() > 0.6


def test_pole_and_nearer_vehicles_reduce_visibility():
    vs = [make_vehicle(1, "car", lane=3, t_enter=0.0, speed=8.0), make_vehicle(2, "bus", lane=0, t_enter=0.0, speed=8.0)]
    scene = StreetScene(vs, duration_s=8, fps=10, lighting=Lighting(noise_sigma=0.0), pole_x=None)
    vis = {1: [], 2: []}
    for tr in scene.truths():
        for o in tr.objects:
            vis[o.track_id].append(o.visible)
    # The car (far lane, leftwards) passes behind the bus (near lane, rightwards).
    assert min(vis[1]) < 0.3 and max(vis[1]) > 0.9
    assert min(v for v in vis[2] if v > 0) > 0 and max(vis[2]) > 0.95


def test_crossings_count_every_vehicle_once_with_direction():
    scene = two_way_street()
    crossings = scene.crossings(line_x=320)
    assert sorted((tid, label, d) for tid, label, d, _ in crossings) == [(1, "car", 1), (2, "bus", -1), (3, "truck", 1), (4, "bike", -1)]


def test_video_reads_back_with_every_frame(tmp_path):
    scene = two_way_street()
    truths = scene.write_video(tmp_path / "street.avi")
    cap = cv2.VideoCapture(str(tmp_path / "street.avi"))
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        assert frame.shape == (360, 640, 3)
        n += 1
    cap.release()
    assert n == scene.n_frames == len(truths) == 60
    save_truth(tmp_path / "t.json", truths)
    assert load_truth(tmp_path / "t.json") == truths


def test_random_traffic_keeps_a_gap_in_each_lane():
    scene = StreetScene.random(7, duration_s=60, per_lane_per_min=30)
    lanes = {}
    for v in scene.vehicles:
        lanes.setdefault(v.lane, []).append(v)
    assert len(lanes) == 4 and all(len(vs) > 5 for vs in lanes.values())
    boxes_by_frame = [tr.objects for tr in (scene.render(i, pixels=False)[1] for i in range(0, scene.n_frames, 7))]
    for objs in boxes_by_frame:
        for a in objs:
            for b in objs:
                same_lane = next(v.lane for v in scene.vehicles if v.track_id == a.track_id) == next(v.lane for v in scene.vehicles if v.track_id == b.track_id)
                if a.track_id < b.track_id and same_lane:
                    assert a.box[2] <= b.box[0] or b.box[2] <= a.box[0]  # side by side, never overlapping


def test_lighting_gain_follows_keyframes():
    scene = StreetScene([], duration_s=4, fps=10, lighting=Lighting(((0, 1.0), (2, 0.5)), noise_sigma=0.0), pole_x=None)
    bright, t0 = scene.render(0)
    dark, t2 = scene.render(20)
    assert t0.gain == 1.0 and t2.gain == 0.5
    assert abs(dark.mean() / bright.mean() - 0.5) < 0.02


def test_parking_occupancy_follows_the_schedule():
    scene = ParkingScene([Stay(1, "A2", t_arrive=5, t_leave=20), Stay(2, "B4", -1, 1e9)], duration_s=30, fps=2, lighting=Lighting(noise_sigma=0.0))
    truths = scene.truths()
    occ = [(tr.t, tr.occupancy["A2"], tr.occupancy["B4"]) for tr in truths]
    assert all(b4 for _, _, b4 in occ)
    assert [a2 for t, a2, _ in occ if t <= 2.0] == [False] * 5
    assert all(a2 for t, a2, _ in occ if 5.0 <= t <= 20.0)
    assert [a2 for t, a2, _ in occ if t >= 25.0] == [False] * 10
    assert all(not any(v for k, v in tr.occupancy.items() if k not in ("A2", "B4")) for tr in truths)
    polys = scene.bay_polygons(normalised=True)
    assert len(polys) == 10 and all(0 <= x <= 1 and 0 <= y <= 1 for p in polys.values() for x, y in p)


def test_parked_car_pixels_fill_its_bay():
    scene = ParkingScene([Stay(1, "A3", -1, 1e9, (40, 40, 190))], duration_s=1, fps=1, lighting=Lighting(noise_sigma=0.0))
    empty = ParkingScene([], duration_s=1, fps=1, lighting=Lighting(noise_sigma=0.0))
    img, truth = scene.render(0)
    bg, _ = empty.render(0)
    poly = np.int32(scene.bay_polygons()["A3"])
    mask = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(mask, [poly], 1)
    diff = np.abs(img.astype(int) - bg.astype(int)).sum(axis=2) > 40
    assert diff[mask > 0].mean() > 0.4 and truth.objects[0].label == "car"


def test_bin_surface_grows_with_level():
    spec = BinSpec("b", x=0.0, y=0.0, levels=((0, 0.0), (10, 1.0)))
    scene = BinScene([spec], duration_s=10, fps=1, lighting=Lighting(noise_sigma=0.0))
    x1, y1, x2, y2 = (int(v) for v in scene.region("b"))
    empty = scene.render_levels({"b": 0.0}, noise=False)[y1:y2, x1:x2]
    assert scene.render(5)[1].levels == {"b": 0.5}
    changed = []
    for level in (0.25, 0.5, 0.75, 1.0):
        img = scene.render_levels({"b": level}, noise=False)[y1:y2, x1:x2]
        changed.append((np.abs(img.astype(int) - empty.astype(int)).sum(axis=2) > 30).mean())
    assert changed == sorted(changed) and changed[0] > 0.1 and changed[-1] > 0.6
