"""Fill level of waste containers.

The first estimator compares the container region with two reference images
recorded at install time, one with the container empty and one full
(`edge-agent diag camera reference <camera> <bin> empty|full`). Each pixel is
scored by whether it looks more like the empty or the full reference; pixels
that look the same in both (the rim, a wall) carry no information and are
left out. The covered share is the share of the remaining pixels that look
full. Seen from the side that share is the fill level. Seen from above, the
rubbish surface looks larger the nearer it comes to the camera: its apparent
size grows from `floor_scale` (the floor's size relative to the opening) to 1,
inversely with its distance, so the level is recovered from the square root of
the covered share by inverting that perspective. A model-based estimator plugs
in through the same `FillEstimator` interface.

The reported level is the median of the last `smoothing` estimates, so a
person walking past the container does not make it overflow.
"""

from __future__ import annotations

import os
from collections import deque
from typing import Protocol

import cv2
import numpy as np

from agent.vision.config import BinConfig

_SIZE = (64, 64)  # references and live regions are compared at this size


class FillEstimator(Protocol):
    def estimate(self, region_bgr: np.ndarray) -> float:
        """Fill level of the container in the region, 0..100 %."""
        ...


class ReferenceFillEstimator:
    def __init__(self, empty_bgr: np.ndarray, full_bgr: np.ndarray, floor_scale: float = 1.0) -> None:
        self.empty = _prepare(empty_bgr)
        self.full = _prepare(full_bgr)
        self.floor_scale = floor_scale
        contrast = np.linalg.norm(self.full - self.empty, axis=2)
        # pixels the two references disagree on are the only evidence
        self.informative = contrast > 12.0
        if int(self.informative.sum()) < 16:
            raise ValueError("the empty and full reference images look the same; record them again with the container really empty and really full")

    def covered(self, region_bgr: np.ndarray) -> float:
        """Share (0..1) of the informative pixels that look like the full reference."""
        cur = _prepare(region_bgr)
        d_empty = np.linalg.norm(cur - self.empty, axis=2)
        d_full = np.linalg.norm(cur - self.full, axis=2)
        return float(((d_full < d_empty) & self.informative).sum() / self.informative.sum())

    def estimate(self, region_bgr: np.ndarray) -> float:
        c = self.covered(region_bgr)
        if self.floor_scale >= 0.999:
            return 100.0 * c
        s0 = self.floor_scale
        s = min(max(c**0.5, s0), 1.0)
        return 100.0 * (1.0 / s0 - 1.0 / s) / (1.0 / s0 - 1.0)


def _prepare(img: np.ndarray) -> np.ndarray:
    small = cv2.resize(img, _SIZE, interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (5, 5), 0)
    # Lab separates brightness from colour, so a cloud passing changes less
    return cv2.cvtColor(small, cv2.COLOR_BGR2LAB).astype(np.float32)


def crop(frame: np.ndarray, region: tuple[float, float, float, float]) -> np.ndarray:
    h, w = frame.shape[:2]
    x1, y1, x2, y2 = region
    return frame[int(round(y1 * h)) : max(int(round(y2 * h)), int(round(y1 * h)) + 1), int(round(x1 * w)) : max(int(round(x2 * w)), int(round(x1 * w)) + 1)]


def reference_paths(cfg: BinConfig, camera: str, data_dir: str) -> tuple[str, str]:
    base = os.path.join(data_dir, "vision", camera)
    empty = cfg.empty_reference or os.path.join(base, f"{cfg.name}_empty.png")
    full = cfg.full_reference or os.path.join(base, f"{cfg.name}_full.png")
    return empty, full


def save_reference(frame: np.ndarray, cfg: BinConfig, camera: str, data_dir: str, which: str) -> str:
    if which not in ("empty", "full"):
        raise ValueError(f"reference must be 'empty' or 'full', not {which!r}")
    return save_region(frame, cfg.region, reference_paths(cfg, camera, data_dir)[0 if which == "empty" else 1])


def save_region(frame: np.ndarray, region: tuple[float, float, float, float], path: str) -> str:
    """Write the region of the frame as PNG, atomically (a reference is never half written)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp.png"
    if not cv2.imwrite(tmp, crop(frame, region)):
        raise OSError(f"could not write {tmp}; check that {os.path.dirname(path)} is writable")
    os.replace(tmp, path)
    return path


class BinMonitor:
    """One container: estimator, smoothing, overflow flag."""

    def __init__(self, cfg: BinConfig, camera: str, data_dir: str, estimator: FillEstimator | None = None) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.camera = camera
        self.data_dir = data_dir
        self.estimator = estimator
        self.error = ""
        self._history: deque[float] = deque(maxlen=cfg.smoothing)
        if estimator is None:
            self.reload()

    def reload(self) -> None:
        """(Re)load the reference images; sets `error` when they are missing."""
        self._history.clear()
        empty_p, full_p = reference_paths(self.cfg, self.camera, self.data_dir)
        missing = [p for p in (empty_p, full_p) if not os.path.exists(p)]
        if missing:
            self.estimator = None
            self.error = (
                f"no reference image {missing[0]}: record it with "
                f"`edge-agent diag camera reference {self.camera} {self.name} {'empty' if missing[0] == empty_p else 'full'}`"
            )
            return
        empty, full = cv2.imread(empty_p), cv2.imread(full_p)
        if empty is None or full is None:
            self.estimator, self.error = None, f"cannot read reference images {empty_p}, {full_p}; record them again"
            return
        try:
            self.estimator = ReferenceFillEstimator(empty, full, self.cfg.floor_scale)
            self.error = ""
        except ValueError as exc:
            self.estimator, self.error = None, str(exc)

    def update(self, frame: np.ndarray) -> None:
        if self.estimator is None:
            return
        self._history.append(self.estimator.estimate(crop(frame, self.cfg.region)))

    @property
    def level(self) -> float | None:
        """Smoothed fill %, None until `smoothing` estimates are in."""
        if len(self._history) < self._history.maxlen:  # type: ignore[operator]
            return None
        return float(np.clip(np.median(self._history), 0.0, 100.0))

    @property
    def overflow(self) -> bool | None:
        lvl = self.level
        return None if lvl is None else lvl >= self.cfg.overflow_level
