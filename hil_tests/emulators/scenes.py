"""Procedural camera scenes with exact ground truth, for vision tests, training and the demo.

Everything is deterministic from a seed: the same arguments give the same pixels
and the same truth on every machine (per-frame noise is seeded by frame index, so
frame i is identical whether rendered alone or in a sequence).

Street (fixed pole-mounted camera, mildly oblique, four lanes, a pole in front)
-------------------------------------------------------------------------------
    from hil_tests.emulators.scenes import StreetScene, make_vehicle, Lighting, CLASSES

    scene = StreetScene.random(seed=3, duration_s=30, fps=10, size=(640, 360),
                               per_lane_per_min=8, mix=(0.6, 0.2, 0.1, 0.1))
    # or scripted, with counts you choose:
    vs = [make_vehicle(1, "car", lane=0, t_enter=0.0, speed=10.0),
          make_vehicle(2, "bus", lane=2, t_enter=1.0, speed=8.0),
          make_vehicle(3, "truck", lane=1, t_enter=0.5, speed=6.0)]
    scene = StreetScene(vs, duration_s=8, fps=10, seed=1,
                        lighting=Lighting(((0, 1.0), (4, 0.6)), noise_sigma=2.0), pole_x=1.5)

    img, truth = scene.render(i)          # BGR uint8 (h, w, 3) and FrameTruth
    _, truth = scene.render(i, pixels=False)   # truth only (fast)
    for img, truth in scene.frames(): ...
    truths = scene.write_video("clip.avi")     # MJPG .avi, readable by cv2.VideoCapture
    scene.crossings(line_x=320)           # [(track_id, label, direction, frame), ...]

CLASSES = ("car", "truck", "bus", "bike"); class ids are indexes into it ("truck"
covers vans and lorries; "bike" is a bicycle or motorbike with rider).
Lanes (LANES): 0 and 1 travel left->right (+1, 0 nearest the camera), 2 and 3
right->left (-1). Vehicles enter fully off-screen at t_enter and drive at constant
speed; vehicles in one lane never collide, vehicles in the two lanes of one
direction overtake each other (occlusion), and the pole (pole_x metres from the
image centre line; None = no pole) hides a strip of every lane. scene.vehicles
lists the script; scene.n_frames, scene.fps, scene.size (w, h) describe the clip.

Parking (high camera over ten bays, A1..A5 top row, B1..B5 bottom row)
-------------------------------------------------------------------
    from hil_tests.emulators.scenes import ParkingScene, Stay
    scene = ParkingScene.random(seed=2, duration_s=60, fps=5)      # or:
    scene = ParkingScene([Stay(1, "A2", t_arrive=5, t_leave=30), Stay(2, "B4", -1, 1e9)],
                         duration_s=40, fps=5, manoeuvre_s=4.0)
    scene.bay_polygons(normalised=True)   # {"A1": [(x, y), ...4 points], ...} for zone config
    img, truth = scene.render(i); truth.occupancy["A2"] -> bool
A Stay's car drives along the aisle from the left and swings into its bay during
the manoeuvre_s seconds before t_arrive; after t_leave it backs out and leaves to
the right. A bay is occupied (truth) when car footprints cover >= 50 % of it, so
occupancy flips part-way through the manoeuvre. Cars are GTObjects (label "car",
direction 0 while parked). t_arrive <= 0: parked from the start.

Bins (camera straight above open containers)
--------------------------------------------
    from hil_tests.emulators.scenes import BinScene, BinSpec, Walker
    scene = BinScene.random(seed=4, duration_s=120, fps=2, n_bins=3, walkers=2)   # or:
    scene = BinScene([BinSpec("bin1", x=-2.0, y=0.0, levels=((0, 0.1), (60, 0.9), (62, 0.0)))],
                     duration_s=90, walkers=[Walker(100, y=0.3, t0=10)])
    scene.region("bin1", normalised=True)     # (x1, y1, x2, y2) of the opening, for BinConfig.region
    empty = scene.render_levels({"bin1": 0.0}, noise=False)   # reference images
    full = scene.render_levels({"bin1": 1.0}, noise=False)
    img, truth = scene.render(i); truth.levels["bin1"] -> 0..1
Levels are interpolated between keyframes (an emptying is a quick ramp to 0).
The rubbish surface is drawn at its true height, so it grows from half the
opening (empty) to the whole opening (full). Walkers (label "person") cross the
view and hide bins for a moment, as people do.

Ground truth (scene_common)
---------------------------
FrameTruth(index, t, objects, occupancy, levels, gain):
  objects: GTObject(track_id, cls, label, box=(x1, y1, x2, y2), visible, direction)
    box = tight box of the drawn silhouette (no shadow), clipped to the frame.
    visible = fraction of the silhouette not hidden by nearer vehicles or the
    pole, times the fraction of the box inside the frame (0..1). Objects with no
    pixel in the frame are absent. direction = +1 right, -1 left, 0 standing.
  occupancy: parking scenes, bay id -> bool.  levels: bin scenes, bin id -> 0..1.
  gain: the lighting gain applied to this frame.
save_truth(path, truths) / load_truth(path) write and read them as JSON.
Lighting(keyframes=((t, gain), ...), noise_sigma): gain interpolated in time,
Gaussian sensor noise; Lighting.random(rng, duration) adds a passing cloud.
write_video(path, frames, fps) writes any BGR frame iterable as MJPG .avi.
"""

from __future__ import annotations

from hil_tests.emulators.scene_bins import BinScene, BinSpec, Walker
from hil_tests.emulators.scene_common import (
    FrameTruth,
    GTObject,
    Lighting,
    load_truth,
    save_truth,
    write_video,
)
from hil_tests.emulators.scene_parking import ParkingScene, Stay
from hil_tests.emulators.scene_street import CLASSES, LANES, StreetScene, Vehicle, make_vehicle

__all__ = [
    "CLASSES",
    "LANES",
    "BinScene",
    "BinSpec",
    "FrameTruth",
    "GTObject",
    "Lighting",
    "ParkingScene",
    "Stay",
    "StreetScene",
    "Vehicle",
    "Walker",
    "load_truth",
    "make_vehicle",
    "save_truth",
    "write_video",
]
