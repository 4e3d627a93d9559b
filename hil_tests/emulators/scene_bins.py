"""Bin scene: open waste containers seen from a camera straight above them.

The camera is CAM_Z metres above the ground looking down; each container is an
open box of depth BIN_D. The rubbish surface rises with the fill level and,
being nearer the camera, looks larger: its outline goes from half the rim size
(empty) to the rim itself (full), with the inner walls visible in between.
Projection is exact pinhole geometry. See scenes.py for the API.
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

CAM_Z = 4.0
BIN_D = 1.2
BIN_W, BIN_L = 1.2, 1.0


@dataclass(frozen=True)
class BinSpec:
    """A container at ground position (x, y) metres from below the camera; level keyframes (t, 0..1)."""

    name: str
    x: float
    y: float
    levels: tuple[tuple[float, float], ...]
    colour: tuple[int, int, int] = (40, 110, 40)

    def level_at(self, t: float) -> float:
        return float(np.interp(t, [k[0] for k in self.levels], [k[1] for k in self.levels]))


@dataclass(frozen=True)
class Walker:
    """A person crossing the view left to right along y, from t0, at `speed` m/s."""

    track_id: int
    y: float
    t0: float
    speed: float = 1.3


class BinScene(Clip):
    def __init__(
        self,
        bins: list[BinSpec],
        duration_s: float,
        fps: float = 2.0,
        size: tuple[int, int] = (640, 360),
        seed: int = 0,
        lighting: Lighting | None = None,
        walkers: list[Walker] | None = None,
    ) -> None:
        self.bins = list(bins)
        self.walkers = list(walkers or [])
        self.fps = float(fps)
        self.n_frames = int(round(duration_s * fps))
        self.size = size
        self.seed = seed
        self.lighting = lighting or Lighting()
        self.f = 300.0 * size[1] / 360.0
        rng = np.random.default_rng([seed, 3])
        self._bg = self._background(rng)
        # Rubbish texture per bin, anchored to the surface so it scales with it.
        self._tex = {b.name: self._rubbish(rng) for b in self.bins}

    @classmethod
    def random(
        cls,
        seed: int,
        duration_s: float = 120.0,
        fps: float = 2.0,
        size: tuple[int, int] = (640, 360),
        n_bins: int = 3,
        lighting: Lighting | None = None,
        walkers: int = 2,
    ) -> BinScene:
        """Bins filling at random rates; each is emptied once somewhere in the clip."""
        rng = np.random.default_rng(seed)
        colours = [(40, 110, 40), (40, 40, 40), (150, 90, 30), (30, 160, 200)]
        bins = []
        for k in range(n_bins):
            x = (k - (n_bins - 1) / 2) * 2.0
            start = float(rng.uniform(0.0, 0.6))
            t_empty = float(rng.uniform(0.3, 0.7)) * duration_s
            before = min(1.0, start + float(rng.uniform(0.2, 0.5)))
            after = float(rng.uniform(0.2, 0.8))
            keys = ((0.0, start), (t_empty, before), (t_empty + 5.0, 0.0), (duration_s, after))
            bins.append(BinSpec(f"bin{k + 1}", x, 0.0, keys, colours[k % len(colours)]))
        ws = [Walker(100 + k, float(rng.uniform(-0.6, 0.6)), float(rng.uniform(0, duration_s - 10))) for k in range(walkers)]
        return cls(bins, duration_s, fps, size, seed, lighting or Lighting.random(rng, duration_s), ws)

    def project(self, x: float, y: float, z: float) -> tuple[float, float]:
        w, h = self.size
        return w / 2 + self.f * x / (CAM_Z - z), h / 2 + self.f * y / (CAM_Z - z)

    def _quad(self, b: BinSpec, z: float) -> np.ndarray:
        return np.float32(
            [
                self.project(b.x + dx, b.y + dy, z)
                for dx, dy in ((-BIN_W / 2, -BIN_L / 2), (BIN_W / 2, -BIN_L / 2), (BIN_W / 2, BIN_L / 2), (-BIN_W / 2, BIN_L / 2))
            ]
        )

    def region(self, name: str, normalised: bool = False) -> tuple[float, float, float, float]:
        """The container's opening (rim) as [x1, y1, x2, y2], pixels or fractions (vision BinConfig.region)."""
        b = next(b for b in self.bins if b.name == name)
        q = self._quad(b, BIN_D)
        x1, y1, x2, y2 = float(q[:, 0].min()), float(q[:, 1].min()), float(q[:, 0].max()), float(q[:, 1].max())
        if normalised:
            w, h = self.size
            return (round(x1 / w, 4), round(y1 / h, 4), round(x2 / w, 4), round(y2 / h, 4))
        return (x1, y1, x2, y2)

    def _background(self, rng: np.random.Generator) -> np.ndarray:
        w, h = self.size
        g = 140.0 + value_noise(rng, (h, w), 3, 6.0) + value_noise(rng, (h, w), 50, 8.0)
        img = np.repeat(np.clip(g, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
        step = self.f * 0.5 / CAM_Z  # half-metre paving slabs on the ground
        for k in np.arange(0, max(w, h), step):
            cv2.line(img, (int(k), 0), (int(k), h), (118, 118, 118), 1)
            cv2.line(img, (0, int(k)), (w, int(k)), (118, 118, 118), 1)
        return img

    def _rubbish(self, rng: np.random.Generator) -> np.ndarray:
        tex = np.full((100, 120, 3), 90, np.uint8)
        tex[:] = np.clip(90 + value_noise(rng, (100, 120), 4, 15.0), 0, 255).astype(np.uint8)[..., None]
        for _ in range(40):  # bags and boxes
            c = (int(rng.integers(0, 120)), int(rng.integers(0, 100)))
            col = tuple(int(v) for v in rng.integers(20, 230, 3))
            cv2.ellipse(tex, c, (int(rng.integers(6, 20)), int(rng.integers(5, 15))), float(rng.uniform(0, 180)), 0, 360, col, -1)
        return tex

    def render_levels(self, levels: dict[str, float], t: float = 0.0, index: int = 0, noise: bool = True) -> np.ndarray:
        """A frame with the bins at the given levels (e.g. references: all 0.0 or all 1.0)."""
        img = self._bg.copy()
        for b in self.bins:
            lv = float(np.clip(levels.get(b.name, 0.0), 0.0, 1.0))
            rim, floor = self._quad(b, BIN_D), self._quad(b, 0.0)
            surf = self._quad(b, lv * BIN_D)
            cv2.fillPoly(img, [np.round(floor + np.float32([6, 8])).astype(np.int32)], (85, 85, 85), cv2.LINE_AA)  # shadow
            # Outer walls: off-centre bins show the side facing the image centre.
            hull = cv2.convexHull(np.round(np.vstack([rim, floor])).astype(np.int32))
            cv2.fillPoly(img, [hull], shade(b.colour, 0.8), cv2.LINE_AA)
            # Inside, seen through the opening only: floor, inner walls, then the rubbish surface.
            inside = np.zeros_like(img)
            cv2.fillPoly(inside, [np.round(floor).astype(np.int32)], (30, 30, 30))
            for k, kf in zip(range(4), (0.45, 0.6, 0.75, 0.55), strict=True):
                quad = np.float32([rim[k], rim[(k + 1) % 4], surf[(k + 1) % 4], surf[k]])
                cv2.fillPoly(inside, [np.round(quad).astype(np.int32)], shade(b.colour, kf), cv2.LINE_AA)
            if lv > 0.005:
                tex = self._tex[b.name]
                src = np.float32([[0, 0], [tex.shape[1], 0], [tex.shape[1], tex.shape[0]], [0, tex.shape[0]]])
                warped = cv2.warpPerspective(tex, cv2.getPerspectiveTransform(src, surf), self.size)
                smask = np.zeros(img.shape[:2], np.uint8)
                cv2.fillPoly(smask, [np.round(surf).astype(np.int32)], 255)
                inside[smask > 0] = warped[smask > 0]
            opening = np.zeros(img.shape[:2], np.uint8)
            cv2.fillPoly(opening, [np.round(rim).astype(np.int32)], 255)
            img[opening > 0] = inside[opening > 0]
            cv2.polylines(img, [np.round(rim).astype(np.int32)], True, shade(b.colour, 1.2, 10), 5, cv2.LINE_AA)
        for wk in self.walkers:
            x = -8.0 + wk.speed * (t - wk.t0)
            if -8.0 <= x <= 8.0:
                cx, cy = self.project(x, wk.y, 1.7)
                s = self.f / (CAM_Z - 1.7)
                cv2.ellipse(img, (int(cx), int(cy)), (int(0.2 * s), int(0.45 * s)), 0, 0, 360, (60, 40, 120), -1, cv2.LINE_AA)
                cv2.circle(img, (int(cx), int(cy)), int(0.12 * s), (40, 60, 90), -1, cv2.LINE_AA)
        if noise:
            img = self.lighting.apply(img, t, frame_rng(self.seed, index))
        return img

    def render(self, index: int, pixels: bool = True) -> tuple[np.ndarray | None, FrameTruth]:
        t = index / self.fps
        levels = {b.name: round(b.level_at(t), 4) for b in self.bins}
        objects = []
        w, h = self.size
        for wk in self.walkers:
            x = -8.0 + wk.speed * (t - wk.t0)
            if -8.0 <= x <= 8.0:
                cx, cy = self.project(x, wk.y, 1.7)
                s = self.f / (CAM_Z - 1.7)
                box = box_of(np.float32([[cx - 0.2 * s, cy - 0.45 * s], [cx + 0.2 * s, cy + 0.45 * s]]), w, h)
                if box is not None:
                    objects.append(GTObject(wk.track_id, 0, "person", box, 1.0, 1))
        img = self.render_levels(levels, t, index) if pixels else None
        return img, FrameTruth(index, round(t, 4), tuple(objects), levels=levels, gain=round(self.lighting.gain_at(t), 4))
