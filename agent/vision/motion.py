"""Model-free motion detection for fixed cameras: background subtraction
(MOG2) and connected blobs, handed to the same tracker and counting lines as
model detections.

It needs no model and little CPU, and counts anything that moves, of any
shape. Its limits: it cannot tell a car from a van (every blob gets one
label), two vehicles moving side by side merge into one blob, and a parked
vehicle fades into the background after a while, so it cannot tell whether a
bay is occupied. Use detector mode for classes and parking.
"""

from __future__ import annotations

import cv2
import numpy as np

_WORK_WIDTH = 320  # blobs are found on a downscaled frame: cheaper and less noisy


class MotionDetector:
    def __init__(self, label: str, min_area: float, *, history: int = 300, warmup: int = 10) -> None:
        self.label = label
        self.min_area = min_area
        self.warmup = warmup
        self._frames = 0
        self._bg = cv2.createBackgroundSubtractorMOG2(history=history, varThreshold=16, detectShadows=True)
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        # wide closing: a vehicle passing behind a lamp post stays one blob
        self._close = cv2.getStructuringElement(cv2.MORPH_RECT, (9, 4))

    def detect(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Boxes (N,4, x1 y1 x2 y2 in frame pixels), scores and labels of the
        moving blobs in this frame."""
        h, w = frame_bgr.shape[:2]
        scale = min(1.0, _WORK_WIDTH / w)
        small = cv2.resize(frame_bgr, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA) if scale < 1 else frame_bgr
        small = cv2.GaussianBlur(small, (3, 3), 0)
        mask = self._bg.apply(small)
        self._frames += 1
        if self._frames <= self.warmup:
            # the model has not seen the background yet: everything "moves"
            return np.zeros((0, 4)), np.zeros(0), []
        # 127 marks shadows: a car's shadow must not widen or merge its blob
        _, mask = cv2.threshold(mask, 200, 255, cv2.THRESH_BINARY)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._kernel)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, self._close, iterations=1)
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        min_px = self.min_area * mask.shape[0] * mask.shape[1]
        boxes = []
        for i in range(1, n):
            x, y, bw, bh, area = stats[i]
            if area < min_px:
                continue
            boxes.append([x / scale, y / scale, (x + bw) / scale, (y + bh) / scale])
        arr = merge_pieces(np.array(boxes, dtype=np.float64).reshape(-1, 4))
        return arr, np.ones(len(arr)), [self.label] * len(arr)


def merge_pieces(boxes: np.ndarray, max_gap: float = 0.25, min_overlap: float = 0.6) -> np.ndarray:
    """Join blobs side by side at the same height with a narrow gap between
    them: the two halves of a bus behind a lamp post, or of a van whose
    windows match the background. Vehicles following each other in a lane
    keep a gap of metres, far wider than a quarter of their height."""
    boxes = [b.copy() for b in boxes]
    merged = True
    while merged and len(boxes) > 1:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                ha, hb = a[3] - a[1], b[3] - b[1]
                y_overlap = min(a[3], b[3]) - max(a[1], b[1])
                x_gap = max(a[0], b[0]) - min(a[2], b[2])
                if y_overlap >= min_overlap * min(ha, hb) and x_gap <= max_gap * max(ha, hb):
                    boxes[i] = np.array([min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])])
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return np.array(boxes, dtype=np.float64).reshape(-1, 4)
