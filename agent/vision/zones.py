"""Polygon zones: how many objects are in each, and parking bays free or
occupied, debounced so that a car driving past a bay or a pedestrian
occluding a parked car does not flip the state.

An object is in a zone when the centre of its box is inside the polygon.
Lost tracks (briefly occluded) keep their last box, so a parked car hidden
for a moment by a passing van still occupies its bay.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

from agent.vision.config import ZoneConfig
from agent.vision.tracker import Track


class Debounced:
    """A value that changes only after a new raw value has held for `hold`
    seconds. `value` is None until the first value has held that long."""

    def __init__(self, hold: float) -> None:
        self.hold = hold
        self.value: int | None = None
        self._candidate: int | None = None
        self._since = 0.0

    def update(self, raw: int, t: float) -> bool:
        """Returns True when the reported value changed."""
        if raw == self.value:
            self._candidate = None
            return False
        if raw != self._candidate:
            self._candidate, self._since = raw, t
        if t - self._since >= self.hold:
            self.value, self._candidate = raw, None
            return True
        return False


class Zone:
    def __init__(self, cfg: ZoneConfig, width: int, height: int, classes: Iterable[str] = ()) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.classes = set(cfg.classes or classes)
        self.polygon = np.array([[x * width, y * height] for x, y in cfg.polygon], dtype=np.float32)
        self.state = Debounced(cfg.debounce)

    def contains(self, x: float, y: float) -> bool:
        return cv2.pointPolygonTest(self.polygon, (float(x), float(y)), False) >= 0

    def raw_count(self, tracks: Iterable[Track]) -> int:
        n = 0
        for tr in tracks:
            if not tr.confirmed or (self.classes and tr.label not in self.classes):
                continue
            x1, y1, x2, y2 = tr.box
            if self.contains((x1 + x2) / 2, (y1 + y2) / 2):
                n += 1
        return n

    def update(self, tracks: Iterable[Track], t: float) -> bool:
        raw = self.raw_count(tracks)
        if self.cfg.kind == "bay":
            raw = min(raw, 1)
        return self.update_raw(raw, t)

    def update_raw(self, raw: int, t: float) -> bool:
        """Feed the undebounced value (object count, or 0/1 for a bay);
        True when the reported value changed. (The share of time occupied
        is computed by the agent from the changes, per report interval.)"""
        return self.state.update(raw, t)
