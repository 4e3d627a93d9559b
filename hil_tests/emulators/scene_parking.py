"""Parking scene: a car park seen from a high, mildly oblique camera.

Drawn top-down on a metric canvas (40 px/m), then warped by a fixed homography
into the camera image, so bays are exact polygons and occupancy is exact: a
bay is occupied when car footprints cover at least half of it. See scenes.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from hil_tests.emulators.scene_common import (
    Clip,
    FrameTruth,
    GTObject,
    Lighting,
    box_of,
    frame_rng,
    shade,
    value_noise,
)
from hil_tests.emulators.scene_street import PALETTE

PX_M = 40.0
LOT_W, LOT_H = 16.0, 14.0
BAY_W, BAY_D = 2.6, 5.0
AISLE_Y = 7.0
CAR_L, CAR_W = 4.4, 1.8


@dataclass(frozen=True)
class Stay:
    """One car's visit: drives in, parked from t_arrive to t_leave, drives out.

    t_arrive <= 0 means already parked when the clip starts; t_leave >= the
    clip's duration means still there at the end.
    """

    track_id: int
    bay: str
    t_arrive: float
    t_leave: float
    colour: tuple[int, int, int] = (190, 190, 195)


class ParkingScene(Clip):
    """Ten bays (A1..A5 top row, B1..B5 bottom row) and the cars of `stays`."""

    def __init__(
        self,
        stays: list[Stay],
        duration_s: float,
        fps: float = 5.0,
        size: tuple[int, int] = (640, 360),
        seed: int = 0,
        lighting: Lighting | None = None,
        manoeuvre_s: float = 4.0,
    ) -> None:
        self.stays = list(stays)
        self.fps = float(fps)
        self.n_frames = int(round(duration_s * fps))
        self.size = size
        self.seed = seed
        self.lighting = lighting or Lighting()
        self.manoeuvre_s = manoeuvre_s
        w, h = size
        cw, ch = int(LOT_W * PX_M), int(LOT_H * PX_M)
        src = np.float32([[0, 0], [cw, 0], [cw, ch], [0, ch]])
        dst = np.float32([[0.12 * w, 0.02 * h], [0.88 * w, 0.02 * h], [w, h], [0, h]])
        self.H = cv2.getPerspectiveTransform(src, dst)
        self.bays_m: dict[str, np.ndarray] = {}
        for row, y0 in (("A", 0.5), ("B", LOT_H - 0.5 - BAY_D)):
            for k in range(5):
                x0 = 1.5 + k * BAY_W
                self.bays_m[f"{row}{k + 1}"] = np.float32([[x0, y0], [x0 + BAY_W, y0], [x0 + BAY_W, y0 + BAY_D], [x0, y0 + BAY_D]])
        self._bay_masks = {b: self._poly_mask(p) for b, p in self.bays_m.items()}
        self._bg = self._background(np.random.default_rng([seed, 2]))

    @classmethod
    def random(
        cls,
        seed: int,
        duration_s: float = 60.0,
        fps: float = 5.0,
        size: tuple[int, int] = (640, 360),
        mean_stay_s: float = 25.0,
        mean_gap_s: float = 15.0,
        lighting: Lighting | None = None,
    ) -> ParkingScene:
        """Each bay alternates empty and occupied with exponential durations; half start occupied."""
        rng = np.random.default_rng(seed)
        stays: list[Stay] = []
        tid = 1
        for bay in [f"{r}{k}" for r in "AB" for k in range(1, 6)]:
            t = -1.0 if rng.random() < 0.5 else float(rng.exponential(mean_gap_s))
            while t < duration_s:
                leave = t + 8.0 + float(rng.exponential(mean_stay_s))
                pal = PALETTE[0]
                stays.append(Stay(tid, bay, t, leave, tuple(int(c) for c in pal[int(rng.integers(len(pal)))])))
                tid += 1
                t = leave + 8.0 + float(rng.exponential(mean_gap_s))
        return cls(stays, duration_s, fps, size, seed, lighting or Lighting.random(rng, duration_s))

    # ----- geometry -----
    def _poly_mask(self, poly_m: np.ndarray) -> np.ndarray:
        m = np.zeros((int(LOT_H * PX_M), int(LOT_W * PX_M)), np.uint8)
        cv2.fillPoly(m, [np.round(poly_m * PX_M).astype(np.int32)], 1)
        return m

    def to_image(self, pts_m: np.ndarray) -> np.ndarray:
        p = np.asarray(pts_m, np.float32).reshape(-1, 1, 2) * PX_M
        return cv2.perspectiveTransform(p, self.H).reshape(-1, 2)

    def bay_polygons(self, normalised: bool = False) -> dict[str, list[tuple[float, float]]]:
        """Bay polygons in image pixels (or fractions of width/height for the vision config)."""
        w, h = self.size
        out = {}
        for b, p in self.bays_m.items():
            q = self.to_image(p)
            out[b] = [(round(float(x) / w, 4), round(float(y) / h, 4)) if normalised else (float(x), float(y)) for x, y in q]
        return out

    def _pose(self, s: Stay, t: float) -> tuple[float, float, float, int] | None:
        """(cx, cy, heading_rad, direction) of the car in metres, or None when off the lot."""
        bay = self.bays_m[s.bay]
        bx, by = float(bay[:, 0].mean()), float(bay[:, 1].mean())
        into = -np.pi / 2 if by < AISLE_Y else np.pi / 2  # heading while parked (nose in)
        m = self.manoeuvre_s
        if s.t_arrive <= t <= s.t_leave:
            return bx, by, into, 0
        if s.t_arrive - m <= t < s.t_arrive:
            u, x_road, sign = (t - (s.t_arrive - m)) / m, -3.0, 1
        elif s.t_leave < t <= s.t_leave + m:
            u, x_road, sign = 1.0 - (t - s.t_leave) / m, LOT_W + 3.0, -1
        else:
            return None
        # Along the aisle for 60 % of the manoeuvre, then swing into the bay.
        if u < 0.6:
            k = u / 0.6
            return x_road + (bx - x_road) * k, AISLE_Y, 0.0, sign
        k = (u - 0.6) / 0.4
        return bx, AISLE_Y + (by - AISLE_Y) * k, into * k, sign

    @staticmethod
    def _rect(cx: float, cy: float, a: float, length: float, width: float, off: float = 0.0) -> np.ndarray:
        # Points of a rectangle along the heading, offset `off` metres forward from the centre.
        c, s = np.cos(a), np.sin(a)
        pts = [(-length / 2, -width / 2), (length / 2, -width / 2), (length / 2, width / 2), (-length / 2, width / 2)]
        return np.float32([[cx + (x + off) * c - y * s, cy + (x + off) * s + y * c] for x, y in pts])

    # ----- rendering -----
    def _background(self, rng: np.random.Generator) -> np.ndarray:
        cw, ch = int(LOT_W * PX_M), int(LOT_H * PX_M)
        g = 95.0 + value_noise(rng, (ch, cw), 3, 7.0) + value_noise(rng, (ch, cw), 60, 6.0)
        canvas = np.repeat(np.clip(g, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
        for p in self.bays_m.values():
            q = np.round(p * PX_M).astype(np.int32)
            cv2.polylines(canvas, [q], True, (225, 225, 225), 4)
        for _ in range(6):  # oil stains where engines stand
            c = (int(rng.uniform(40, cw - 40)), int(rng.uniform(40, ch - 40)))
            cv2.ellipse(canvas, c, (int(rng.uniform(10, 30)), int(rng.uniform(6, 18))), 0, 0, 360, (70, 70, 72), -1)
        return canvas

    def _draw_car(self, canvas: np.ndarray, ids: np.ndarray, k: int, s: Stay, pose) -> np.ndarray:
        cx, cy, a, _ = pose
        body = self._rect(cx, cy, a, CAR_L, CAR_W)
        q = lambda pts: np.round(pts * PX_M).astype(np.int32)  # noqa: E731
        cv2.fillPoly(canvas, [q(body)], s.colour, cv2.LINE_AA)
        cv2.fillPoly(ids, [q(body)], k)
        cv2.fillPoly(canvas, [q(self._rect(cx, cy, a, 0.8, 1.5, 0.75))], (60, 50, 45), cv2.LINE_AA)  # windscreen
        cv2.fillPoly(canvas, [q(self._rect(cx, cy, a, 1.5, 1.5, -0.4))], shade(s.colour, 1.1, 12), cv2.LINE_AA)  # roof
        cv2.fillPoly(canvas, [q(self._rect(cx, cy, a, 0.5, 1.4, -1.45))], (60, 50, 45), cv2.LINE_AA)  # rear window
        return body

    def render(self, index: int, pixels: bool = True) -> tuple[np.ndarray | None, FrameTruth]:
        t = index / self.fps
        canvas = self._bg.copy()
        ids = np.zeros(canvas.shape[:2], np.uint16)
        poses = [(s, self._pose(s, t)) for s in self.stays]
        poses = [(s, p) for s, p in poses if p is not None]
        poses.sort(key=lambda sp: sp[1][3] != 0)  # moving cars drawn over parked ones
        shadow = np.zeros(canvas.shape[:2], np.uint8)
        for _s, p in poses:
            cv2.fillPoly(shadow, [np.round(self._rect(p[0] + 0.25, p[1] + 0.3, p[2], CAR_L, CAR_W) * PX_M).astype(np.int32)], 255)
        shadow = cv2.GaussianBlur(shadow, (9, 9), 0)
        canvas = (canvas.astype(np.float32) * (1.0 - 0.45 * shadow[..., None] / 255.0)).astype(np.uint8)
        bodies = [(s, p, self._draw_car(canvas, ids, k, s, p)) for k, (s, p) in enumerate(poses, start=1)]
        covered = ids > 0
        occupancy = {b: bool((covered & (m > 0)).sum() >= 0.5 * m.sum()) for b, m in self._bay_masks.items()}
        w, h = self.size
        objects = []
        for k, (s, p, body) in enumerate(bodies, start=1):
            box = box_of(self.to_image(body), w, h)
            if box is None:
                continue
            full = self._poly_mask(body).sum()
            vis = float((ids == k).sum()) / max(float(full), 1.0)
            objects.append(GTObject(s.track_id, 0, "car", box, round(min(vis, 1.0), 3), p[3]))
        img = None
        if pixels:
            img = cv2.warpPerspective(
                canvas, self.H, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(80, 120, 90)
            )  # verge beyond the lot
            img = self.lighting.apply(img, t, frame_rng(self.seed, index))
        gain = round(self.lighting.gain_at(t), 4)
        return img, FrameTruth(index, round(t, 4), tuple(objects), occupancy=occupancy, gain=gain)
