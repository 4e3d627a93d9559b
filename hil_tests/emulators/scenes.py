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

from hil_tests.emulators.scene_common import (
    FrameTruth, GTObject, Lighting, load_truth, save_truth, write_video,
)
from hil_tests.emulators.scene_street import CLASSES, LANES, StreetScene, Vehicle, make_vehicle

__all__ = [
    "CLASSES", "LANES", "FrameTruth", "GTObject", "Lighting", "StreetScene", "Vehicle",
    "load_truth", "make_vehicle", "save_truth", "write_video",
]
