"""Street scene: a fixed pole-mounted camera looking across a four-lane road.

Geometry is a pinhole camera at height CAM_H metres looking horizontally along
the depth axis d; the road runs along x (left-right in the image). Vehicles are
cuboids (with a cabin, windows, wheels, a ground shadow) projected exactly, so
ground-truth boxes are the boxes of the drawn pixels. See scenes.py for the API.
"""

from __future__ import annotations

import math
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

CLASSES = ("car", "truck", "bus", "bike")
CAR, TRUCK, BUS, BIKE = range(4)
# (length, width, height) ranges in metres and speed range in m/s per class.
DIMS = {
    CAR: ((3.8, 4.8), (1.7, 1.9), (1.4, 1.6), (7.0, 16.0)),
    TRUCK: ((5.0, 8.0), (2.0, 2.5), (2.3, 3.4), (6.0, 13.0)),
    BUS: ((10.0, 12.0), (2.5, 2.55), (3.0, 3.2), (6.0, 11.0)),
    BIKE: ((1.7, 2.0), (0.6, 0.8), (1.6, 1.8), (3.5, 9.0)),
}
PALETTE = {
    CAR: [(235, 235, 235), (190, 190, 195), (30, 30, 35), (40, 40, 190), (160, 90, 30), (40, 90, 40), (60, 190, 220), (120, 60, 120)],
    TRUCK: [(240, 240, 240), (220, 220, 215), (40, 120, 200), (60, 60, 150), (90, 90, 90)],
    BUS: [(40, 40, 200), (200, 120, 30), (40, 200, 230), (230, 230, 230)],
    BIKE: [(40, 40, 40), (30, 30, 170), (150, 60, 20), (60, 140, 60)],
}
# Lane centre depth (m) and travel direction (+1 = left to right in the image).
LANES = ((14.0, +1), (17.5, +1), (21.0, -1), (24.5, -1))
CAM_H = 10.0
POLE_D = 11.0
FACADE_D = 29.0
_GLASS = (70, 55, 45)
_TYRE = (25, 25, 25)


@dataclass(frozen=True)
class Vehicle:
    """One scripted vehicle: enters fully off-screen at t_enter, constant speed."""

    track_id: int
    cls: int
    lane: int
    t_enter: float
    speed: float  # m/s, > 0
    length: float
    width: float
    height: float
    colour: tuple[int, int, int]

    @property
    def label(self) -> str:
        return CLASSES[self.cls]


def make_vehicle(track_id: int, cls: int | str, lane: int, t_enter: float, speed: float | None = None, rng: np.random.Generator | None = None) -> Vehicle:
    """A vehicle with class-typical size and colour (random within the class when rng is given)."""
    c = CLASSES.index(cls) if isinstance(cls, str) else cls
    rng = rng or np.random.default_rng(track_id)
    (l0, l1), (w0, w1), (h0, h1), (s0, s1) = DIMS[c]
    pal = PALETTE[c]
    return Vehicle(
        track_id,
        c,
        lane,
        float(t_enter),
        float(speed if speed is not None else rng.uniform(s0, s1)),
        float(rng.uniform(l0, l1)),
        float(rng.uniform(w0, w1)),
        float(rng.uniform(h0, h1)),
        tuple(int(v) for v in pal[int(rng.integers(len(pal)))]),
    )  # type: ignore[arg-type]


class StreetScene(Clip):
    """Renders frames and exact ground truth for a vehicle script. Deterministic from `seed`."""

    def __init__(
        self,
        vehicles: list[Vehicle],
        duration_s: float,
        fps: float = 10.0,
        size: tuple[int, int] = (640, 360),
        seed: int = 0,
        lighting: Lighting | None = None,
        pole_x: float | None = 1.5,
        focal: float | None = None,
    ) -> None:
        self.vehicles = list(vehicles)
        self.fps = float(fps)
        self.n_frames = int(round(duration_s * fps))
        self.size = size
        self.seed = seed
        self.lighting = lighting or Lighting()
        self.pole_x = pole_x
        w, h = size
        # Scale geometry with the frame so that any size shows the same view.
        self.f = focal or 525.0 * h / 360.0
        self.v_h = -81.0 * h / 360.0
        self._bg = self._background(np.random.default_rng([seed, 1]))

    # ----- scripting -----
    @classmethod
    def random(
        cls,
        seed: int,
        duration_s: float = 30.0,
        fps: float = 10.0,
        size: tuple[int, int] = (640, 360),
        per_lane_per_min: float = 8.0,
        mix: tuple[float, ...] = (0.6, 0.2, 0.1, 0.1),
        lighting: Lighting | None = None,
        pole_x: float | None = 1.5,
    ) -> StreetScene:
        """Poisson traffic in all four lanes; same-lane vehicles never collide."""
        rng = np.random.default_rng(seed)
        tmp = cls([], duration_s, fps, size, seed, lighting or Lighting.random(rng, duration_s), pole_x)
        vehicles: list[Vehicle] = []
        tid = 1
        for lane in range(len(LANES)):
            t = float(rng.exponential(60.0 / per_lane_per_min)) - 2.0
            prev: Vehicle | None = None
            while t < duration_s:
                v = make_vehicle(tid, int(rng.choice(len(mix), p=np.asarray(mix) / sum(mix))), lane, t, rng=rng)
                while prev is not None and not tmp._spaced(prev, v):
                    v = Vehicle(**{**v.__dict__, "t_enter": v.t_enter + 0.5})
                vehicles.append(v)
                prev, tid = v, tid + 1
                t = v.t_enter + float(rng.exponential(60.0 / per_lane_per_min))
        tmp.vehicles = vehicles
        return tmp

    def _span(self, v: Vehicle) -> tuple[float, float, float]:
        """(x_start, t_enter, t_exit): enters and leaves fully outside the frame."""
        d_far = LANES[v.lane][0] + v.width / 2
        half = (self.size[0] / 2) * d_far / self.f + v.length / 2 + 0.5
        direction = LANES[v.lane][1]
        return -direction * half, v.t_enter, v.t_enter + 2 * half / v.speed

    def _x(self, v: Vehicle, t: float) -> float:
        x0, t0, _ = self._span(v)
        return x0 + LANES[v.lane][1] * v.speed * (t - t0)

    def _spaced(self, a: Vehicle, b: Vehicle) -> bool:
        _, a0, a1 = self._span(a)
        _, b0, b1 = self._span(b)
        lo, hi = max(a0, b0), min(a1, b1)
        need = (a.length + b.length) / 2 + 3.0
        direction = LANES[a.lane][1]
        return all(direction * (self._x(a, t) - self._x(b, t)) >= need for t in (lo, hi)) if lo <= hi else True

    # ----- geometry -----
    def project(self, x: float, d: float, z: float) -> tuple[float, float]:
        return self.size[0] / 2 + self.f * x / d, self.v_h + self.f * (CAM_H - z) / d

    def _cuboid(self, prims: list, xa: float, xb: float, d0: float, d1: float, za: float, zb: float, colour: tuple[int, int, int]) -> None:
        p = self.project
        side = [p(xa, d0, za), p(xb, d0, za), p(xb, d0, zb), p(xa, d0, zb)]
        top = [p(xa, d0, zb), p(xb, d0, zb), p(xb, d1, zb), p(xa, d1, zb)]
        prims.append(("poly", top, shade(colour, 1.1, 15)))
        if xa > 0 or xb < 0:  # the end face turned towards the camera axis
            xe = xa if xa > 0 else xb
            prims.append(("poly", [p(xe, d0, za), p(xe, d1, za), p(xe, d1, zb), p(xe, d0, zb)], shade(colour, 0.7)))
        prims.append(("poly", side, colour))

    def _side_rect(self, prims: list, xa: float, xb: float, d: float, za: float, zb: float, colour) -> None:
        p = self.project
        prims.append(("poly", [p(xa, d, za), p(xb, d, za), p(xb, d, zb), p(xa, d, zb)], colour))

    def _wheel(self, prims: list, x: float, d: float, r: float) -> None:
        cx, cy = self.project(x, d, r)
        rp = self.f * r / d
        prims.append(("circle", (cx, cy), rp, _TYRE))
        prims.append(("circle", (cx, cy), rp * 0.45, (150, 150, 150)))

    def _vehicle_prims(self, v: Vehicle, t: float) -> list:
        """Drawing primitives of a vehicle at time t, in painter's order."""
        xc = self._x(v, t)
        direction = LANES[v.lane][1]
        d0 = LANES[v.lane][0] - v.width / 2
        d1 = d0 + v.width
        L, H = v.length, v.height
        xa, xb = xc - L / 2, xc + L / 2
        fr = lambda s: xc + direction * s * L / 2  # noqa: E731  s=+1 front, -1 rear
        prims: list = []
        if v.cls == CAR:
            self._cuboid(prims, xa, xb, d0, d1, 0.25, 0.58 * H, v.colour)
            ca, cb = sorted((fr(0.45), fr(-0.75)))
            self._cuboid(prims, ca, cb, d0 + 0.1, d1 - 0.1, 0.58 * H, H, v.colour)
            self._side_rect(prims, ca + 0.12, cb - 0.12, d0 + 0.1, 0.62 * H, 0.95 * H, _GLASS)
            self._side_rect(prims, xc - 0.04, xc + 0.04, d0 + 0.1, 0.6 * H, 0.97 * H, v.colour)
            for s in (0.62, -0.62):
                self._wheel(prims, fr(s), d0, 0.31)
        elif v.cls == TRUCK:
            cab_len = 1.9
            box_a, box_b = sorted((fr(1) - direction * (cab_len + 0.15), fr(-1)))
            cab_a, cab_b = sorted((fr(1), fr(1) - direction * cab_len))
            pieces = [((box_a, box_b), 0.35, H, (230, 230, 230) if v.colour[0] < 100 else v.colour), ((cab_a, cab_b), 0.3, 0.8 * H, v.colour)]
            pieces.sort(key=lambda pc: -abs((pc[0][0] + pc[0][1]) / 2))
            for (a, b), za, zb, col in pieces:
                self._cuboid(prims, a, b, d0, d1, za, zb, col)
            self._side_rect(prims, cab_a + 0.15, cab_b - 0.15, d0, 0.5 * H, 0.75 * H, _GLASS)
            for s in (0.8, -0.55, -0.8):
                self._wheel(prims, fr(s), d0, 0.42)
        elif v.cls == BUS:
            self._cuboid(prims, xa, xb, d0, d1, 0.3, H, v.colour)
            n = int(L // 1.6)
            for k in range(n):
                a = xa + 0.4 + k * (L - 0.8) / n
                self._side_rect(prims, a + 0.08, a + (L - 0.8) / n - 0.08, d0, 0.5 * H, 0.88 * H, _GLASS)
            for s in (0.72, -0.6):
                self._wheel(prims, fr(s), d0, 0.48)
        else:  # bike with rider; the frame is a thin slab, the rider a box and a head
            for s in (0.62, -0.62):
                self._wheel(prims, fr(s), d0 + 0.3, 0.34)
            fa, fb = sorted((fr(-0.45), fr(0.45)))
            self._cuboid(prims, fa, fb, d0 + 0.25, d0 + 0.35, 0.3, 0.75, v.colour)
            ra, rb = sorted((fr(-0.25), fr(0.15)))
            self._cuboid(prims, ra, rb, d0 + 0.05, d1 - 0.05, 0.75, 0.8 * H, shade(v.colour, 0.6, 60))
            hx, hy = self.project(fr(0.05), d0 + v.width / 2, 0.9 * H)
            prims.append(("circle", (hx, hy), self.f * 0.13 / (d0 + v.width / 2), (80, 120, 170)))
        return prims

    def _shadow_poly(self, v: Vehicle, t: float) -> np.ndarray:
        xc = self._x(v, t)
        d0 = LANES[v.lane][0] - v.width / 2
        p = self.project
        pts = [
            p(xc - v.length / 2 - 0.2, d0 - 0.5, 0),
            p(xc + v.length / 2 + 0.4, d0 - 0.5, 0),
            p(xc + v.length / 2 + 0.4, d0 + v.width - 0.1, 0),
            p(xc - v.length / 2 - 0.2, d0 + v.width - 0.1, 0),
        ]
        return np.round(np.asarray(pts)).astype(np.int32)

    # ----- rendering -----
    def _background(self, rng: np.random.Generator) -> np.ndarray:
        w, h = self.size
        img = np.zeros((h, w, 3), np.float32)
        vs, us = np.mgrid[0:h, 0:w].astype(np.float32)
        dy = np.maximum(vs - self.v_h, 1e-3)
        d = self.f * CAM_H / dy
        x = (us - w / 2) * d / self.f
        # World-anchored texture: asphalt grain moves correctly with perspective.
        tex = value_noise(rng, (400, 800), 3, 9.0) + value_noise(rng, (400, 800), 40, 6.0)
        tu = np.clip((x + 20.0) / 0.05, 0, 799).astype(np.float32)
        tv = np.clip((d - 9.0) / 0.05, 0, 399).astype(np.float32)
        grain = cv2.remap(tex, tu, tv, cv2.INTER_LINEAR)
        ground = np.full((h, w), 150.0, np.float32)  # pavement
        slabs = (np.mod(x, 1.0) < 0.04) | (np.mod(d, 1.0) < 0.04)
        ground[slabs] = 120.0
        road = (d > 12.45) & (d < 26.05)
        ground[road] = 88.0
        ground[((d > 12.25) & (d <= 12.45)) | ((d >= 26.05) & (d < 26.25))] = 185.0
        lines = ((d > 12.6) & (d < 12.75)) | ((d > 25.75) & (d < 25.9))
        dashes = (((d > 15.7) & (d < 15.82)) | ((d > 22.7) & (d < 22.82))) & (np.mod(x, 9.0) < 3.0)
        ground += grain
        img[:] = ground[..., None]
        img[lines | dashes] = (210, 210, 210)
        img[((d > 19.08) & (d < 19.2)) | ((d > 19.32) & (d < 19.44))] = (60, 190, 225)
        v_fac = int(math.ceil(self.v_h + self.f * CAM_H / FACADE_D))
        img = np.clip(img, 0, 255).astype(np.uint8)
        # Facades beyond the far pavement.
        x_left = -(w / 2) * FACADE_D / self.f - 2
        while x_left < (w / 2) * FACADE_D / self.f:
            bw = float(rng.uniform(6, 15))
            col = tuple(int(c) for c in rng.integers(70, 200, 3))
            u0, _ = self.project(x_left, FACADE_D, 0)
            u1, _ = self.project(x_left + bw, FACADE_D, 0)
            cv2.rectangle(img, (int(u0), 0), (int(u1), v_fac), col, -1)
            for zf in np.arange(1.2, 14.0, 3.0):
                for xw in np.arange(x_left + 1.0, x_left + bw - 1.5, 2.6):
                    a = self.project(xw, FACADE_D, zf + 1.5)
                    b = self.project(xw + 1.3, FACADE_D, zf)
                    cv2.rectangle(img, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), shade(col, 0.35, 20), -1)
            x_left += bw
        return img

    def _draw(self, prims: list, img: np.ndarray | None, mask: np.ndarray, value: int) -> None:
        for prim in prims:
            if prim[0] == "poly":
                pts = np.round(np.asarray(prim[1])).astype(np.int32)
                if img is not None:
                    cv2.fillPoly(img, [pts], prim[2], cv2.LINE_AA)
                cv2.fillPoly(mask, [pts], value)
            else:
                c = (int(round(prim[1][0])), int(round(prim[1][1])))
                r = max(1, int(round(prim[2])))
                if img is not None:
                    cv2.circle(img, c, r, prim[3], -1, cv2.LINE_AA)
                cv2.circle(mask, c, r, value, -1)

    def _pole_prims(self) -> list:
        if self.pole_x is None:
            return []
        p = self.project
        r = 0.11
        prims = [
            (
                "poly",
                [p(self.pole_x - r, POLE_D, 0), p(self.pole_x + r, POLE_D, 0), p(self.pole_x + r, POLE_D, 12), p(self.pole_x - r, POLE_D, 12)],
                (70, 75, 80),
            )
        ]
        prims.append(
            (
                "poly",
                [
                    p(self.pole_x - 0.3, POLE_D - 0.05, 2.4),
                    p(self.pole_x + 0.3, POLE_D - 0.05, 2.4),
                    p(self.pole_x + 0.3, POLE_D - 0.05, 3.0),
                    p(self.pole_x - 0.3, POLE_D - 0.05, 3.0),
                ],
                (160, 90, 20),
            )
        )
        return prims

    def _active(self, t: float) -> list[Vehicle]:
        out = [v for v in self.vehicles if self._span(v)[1] <= t <= self._span(v)[2]]
        return sorted(out, key=lambda v: -LANES[v.lane][0])  # far lanes first

    def render(self, index: int, pixels: bool = True) -> tuple[np.ndarray | None, FrameTruth]:
        """Frame `index` (BGR uint8) and its truth; pixels=False skips the image (truth only)."""
        w, h = self.size
        t = index / self.fps
        img = self._bg.copy() if pixels else None
        ids = np.zeros((h, w), np.uint16)
        active = self._active(t)
        if img is not None:
            shadow = np.zeros((h, w), np.uint8)
            for v in active:
                cv2.fillPoly(shadow, [self._shadow_poly(v, t)], 255)
            shadow = cv2.GaussianBlur(shadow, (7, 7), 0)
            img[:] = (img.astype(np.float32) * (1.0 - 0.45 * shadow[..., None] / 255.0)).astype(np.uint8)
        prims_of = {}
        full = {}
        for k, v in enumerate(active, start=1):
            prims = self._vehicle_prims(v, t)
            prims_of[v.track_id] = prims
            own = np.zeros((h, w), np.uint8)
            self._draw(prims, None, own, 1)
            full[v.track_id] = int(own.sum())
            self._draw(prims, img, ids, k)
        self._draw(self._pole_prims(), img, ids, 65535)
        objects = []
        for k, v in enumerate(active, start=1):
            pts = [pr[1] for pr in prims_of[v.track_id] if pr[0] == "poly"]
            circ = [(pr[1][0] + s * pr[2], pr[1][1] + s * pr[2]) for pr in prims_of[v.track_id] if pr[0] == "circle" for s in (-1, 1)]
            allpts = np.asarray([q for poly in pts for q in poly] + circ, np.float64)
            box = box_of(allpts, w, h)
            if box is None or full[v.track_id] == 0:
                continue
            ux1, uy1, ux2, uy2 = allpts[:, 0].min(), allpts[:, 1].min(), allpts[:, 0].max(), allpts[:, 1].max()
            in_frame = (box[2] - box[0]) * (box[3] - box[1]) / max((ux2 - ux1) * (uy2 - uy1), 1e-6)
            vis = int((ids == k).sum()) / full[v.track_id] * in_frame
            objects.append(GTObject(v.track_id, v.cls, v.label, box, round(float(vis), 3), LANES[v.lane][1]))
        gain = self.lighting.gain_at(t)
        if img is not None:
            img = self.lighting.apply(img, t, frame_rng(self.seed, index))
        return img, FrameTruth(index, round(t, 4), tuple(objects), gain=round(gain, 4))

    def crossings(self, line_x: float, truths: list[FrameTruth] | None = None) -> list[tuple[int, str, int, int]]:
        """(track_id, label, direction, frame) each time a box centre crosses the vertical image line x=line_x.

        Counted on the ground-truth boxes frame to frame, as a tracker would see them.
        """
        truths = truths if truths is not None else self.truths()
        last: dict[int, float] = {}
        out = []
        for tr in truths:
            for o in tr.objects:
                cx = (o.box[0] + o.box[2]) / 2
                p = last.get(o.track_id)
                if p is not None and (p - line_x) * (cx - line_x) < 0 or (p is not None and cx == line_x != p):
                    out.append((o.track_id, o.label, 1 if cx > p else -1, tr.index))
                last[o.track_id] = cx
        return out
