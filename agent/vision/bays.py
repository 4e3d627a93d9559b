"""Model-free parking-bay occupancy: does the bay look like its empty
reference image?

For cameras without a model that sees parked cars (motion mode, or a model
trained on another view): a parked car changes most of the bay's pixels. To
survive clouds and dusk, each colour channel of the bay is divided by its
mean over the bay before comparing, which cancels a change of brightness;
a car does not cancel, because it covers only part of the bay and differs
from the asphalt around it (and its windows from its body).
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from agent.vision.config import ZoneConfig

_SIZE = (64, 64)
_PIXEL_CHANGE = 0.25  # relative change of a pixel that counts as different


def bay_box(cfg: ZoneConfig) -> tuple[float, float, float, float]:
    xs = [p[0] for p in cfg.polygon]
    ys = [p[1] for p in cfg.polygon]
    return min(xs), min(ys), max(xs), max(ys)


def reference_path(cfg: ZoneConfig, camera: str, data_dir: str) -> str:
    return cfg.empty_reference or os.path.join(data_dir, "vision", camera, f"{cfg.name}_empty.png")


class BayReference:
    def __init__(self, cfg: ZoneConfig, empty_crop: np.ndarray) -> None:
        self.cfg = cfg
        x1, y1, x2, y2 = bay_box(cfg)
        w, h = max(x2 - x1, 1e-6), max(y2 - y1, 1e-6)
        poly = np.array([[(x - x1) / w * _SIZE[0], (y - y1) / h * _SIZE[1]] for x, y in cfg.polygon], np.int32)
        self.mask = np.zeros((_SIZE[1], _SIZE[0]), np.uint8)
        cv2.fillPoly(self.mask, [poly], 1)
        self.mask = self.mask.astype(bool)
        self.ref = self._normalised(empty_crop)

    def _normalised(self, crop: np.ndarray) -> np.ndarray:
        small = cv2.GaussianBlur(cv2.resize(crop, _SIZE, interpolation=cv2.INTER_AREA), (5, 5), 0).astype(np.float32) + 1.0
        means = small[self.mask].mean(axis=0)
        return small / means

    def changed_share(self, crop: np.ndarray) -> float:
        cur = self._normalised(crop)
        diff = np.abs(cur - self.ref).max(axis=2)
        return float((diff[self.mask] > _PIXEL_CHANGE).mean())

    def occupied(self, crop: np.ndarray) -> int:
        return int(self.changed_share(crop) >= self.cfg.change_share)
