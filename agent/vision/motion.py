"""Model-free motion detection for fixed cameras: background subtraction
(MOG2) and connected blobs, handed to the same tracker and counting lines as
model detections.

It needs no model and little CPU, and counts anything that moves, of any
shape. Its limits: it cannot tell a car from a van (every blob gets one
label), and a parked vehicle fades into the background after a while, so it
cannot tell whether a bay is occupied. Use detector mode for classes and
parking.

Vehicles that touch in the image (overtaking, passing each other) make one
blob; two things keep them apart:
- the ground line: a vehicle touches the road at the bottom of its blob, and
  a vehicle further away touches it higher up in the image, so a blob whose
  columns stand on two lines is cut between them (see `split_by_ground`);
- the memory of each vehicle followed on its own before (motion_memory.py):
  a blob holding several of them is cut along their predicted boxes, and a
  vehicle hidden behind a nearer one coasts at its speed.
"""

from __future__ import annotations

import cv2
import numpy as np

from agent.vision.motion_memory import MoverMemory

_WORK_WIDTH = 320  # blobs are found on a downscaled frame: cheaper and less noisy


class MotionDetector:
    def __init__(self, label: str, min_area: float, *, history: int = 500, warmup: int = 10) -> None:
        self.label = label
        self.min_area = min_area
        self.warmup = warmup
        self._frames = 0
        self._bg = cv2.createBackgroundSubtractorMOG2(history=history, varThreshold=16, detectShadows=True)
        # After the warm-up the background learns at a fixed slow rate. OpenCV's
        # automatic rate is still fast for the first hundreds of frames and
        # learns a slow, evenly coloured vehicle (a white van) into the
        # background while it passes, leaving holes that cut it in pieces.
        self._rate = 1.0 / history
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        # wide closing: a vehicle passing behind a lamp post stays one blob
        self._close = cv2.getStructuringElement(cv2.MORPH_RECT, (9, 4))
        self.memory = MoverMemory()

    def detect(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Boxes (N,4, x1 y1 x2 y2 in frame pixels), scores and labels of the
        moving vehicles in this frame."""
        h, w = frame_bgr.shape[:2]
        scale = min(1.0, _WORK_WIDTH / w)
        small = cv2.resize(frame_bgr, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA) if scale < 1 else frame_bgr
        small = cv2.GaussianBlur(small, (3, 3), 0)
        mask = self._bg.apply(small, learningRate=-1.0 if self._frames < self.warmup else self._rate)
        self._frames += 1
        if self._frames <= self.warmup:
            # the model has not seen the background yet: everything "moves"
            return np.zeros((0, 4)), np.zeros(0), []
        # 127 marks shadows: a car's shadow must not widen or merge its blob
        _, mask = cv2.threshold(mask, 200, 255, cv2.THRESH_BINARY)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._kernel)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, self._close, iterations=1)
        blobs = self._blobs(mask)
        boxes = self.memory.follow(blobs, mask > 0)
        arr = np.array(boxes, dtype=np.float64).reshape(-1, 4) / scale
        return arr, np.ones(len(arr)), [self.label] * len(arr)

    def _blobs(self, mask: np.ndarray) -> list[np.ndarray]:
        """Boxes (work-frame pixels) of what moves: components big enough,
        pieces of one vehicle joined, different vehicles cut apart."""
        mh, mw = mask.shape
        min_px = self.min_area * mw * mh
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        keep = [i for i in range(1, n) if stats[i, 4] >= min_px]
        raw = np.array([[stats[i, 0], stats[i, 1], stats[i, 0] + stats[i, 2], stats[i, 1] + stats[i, 3]] for i in keep], dtype=np.float64).reshape(-1, 4)
        blobs: list[np.ndarray] = []
        for group in piece_groups(raw):
            box = np.array([raw[group, 0].min(), raw[group, 1].min(), raw[group, 2].max(), raw[group, 3].max()])
            x1, y1, x2, y2 = (int(v) for v in box)
            pixels = np.isin(labels[y1:y2, x1:x2], [keep[k] for k in group])
            pieces = [p + np.array([x1, y1, x1, y1]) for p in split_by_ground(pixels, min_px)]
            if len(pieces) > 1:
                pieces = self.memory.rejoin(pieces, mw, mh)
            blobs.extend(pieces)
        return blobs


def piece_groups(boxes: np.ndarray, max_gap: float = 0.25, min_overlap: float = 0.6) -> list[list[int]]:
    """Indices of blobs side by side at the same height with a narrow gap
    between them, grouped: the two halves of a bus behind a lamp post, or of
    a van whose windows match the background. Vehicles following each other
    in a lane keep a gap of metres, far wider than a quarter of their height."""
    groups = [[i] for i in range(len(boxes))]
    merged = [np.asarray(b, dtype=np.float64) for b in boxes]
    joined = True
    while joined and len(merged) > 1:
        joined = False
        for i in range(len(merged)):
            for j in range(i + 1, len(merged)):
                a, b = merged[i], merged[j]
                ha, hb = a[3] - a[1], b[3] - b[1]
                y_overlap = min(a[3], b[3]) - max(a[1], b[1])
                x_gap = max(a[0], b[0]) - min(a[2], b[2])
                if y_overlap >= min_overlap * min(ha, hb) and x_gap <= max_gap * max(ha, hb):
                    merged[i] = np.array([min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])])
                    groups[i] += groups[j]
                    del merged[j], groups[j]
                    joined = True
                    break
            if joined:
                break
    return groups


def merge_pieces(boxes: np.ndarray, max_gap: float = 0.25, min_overlap: float = 0.6) -> np.ndarray:
    """The boxes of `piece_groups`, each group joined into one box."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    out = [[boxes[g, 0].min(), boxes[g, 1].min(), boxes[g, 2].max(), boxes[g, 3].max()] for g in piece_groups(boxes, max_gap, min_overlap)]
    return np.array(out, dtype=np.float64).reshape(-1, 4)


def split_by_ground(pixels: np.ndarray, min_px: float, step: float = 0.15, min_width: float = 0.3) -> list[np.ndarray]:
    """Cut a blob (its boolean pixel mask) where the line its columns stand
    on jumps by more than `step` of its height: a vehicle further from the
    camera touches the road higher in the image, so two vehicles overlapping
    in the image (one overtaking the other, or passing in the other
    direction) stand on two lines as long as part of each shows. Pieces
    narrower than `min_width` of their height, or smaller than `min_px`, are
    wheels, bumpers and noise: they stay with a neighbour. Returns boxes
    relative to the mask."""
    hgt, wid = pixels.shape
    whole = [np.array([0.0, 0.0, float(wid), float(hgt)])]
    if hgt < 8 or wid < 8:
        return whole
    cols = pixels.any(axis=0)
    bottom = np.where(cols, hgt - 1 - np.argmax(pixels[::-1], axis=0), -1).astype(np.float32)
    bottom = cv2.medianBlur(bottom.reshape(1, -1), 5).reshape(-1)  # a wheel gap is not a step
    jump = max(4.0, step * hgt)
    cuts = [0] + [c for c in range(1, wid) if abs(bottom[c] - bottom[c - 1]) > jump] + [wid]
    segs = [[cuts[i], cuts[i + 1]] for i in range(len(cuts) - 1)]
    joined = True
    while joined and len(segs) > 1:
        joined = False
        for i, (a, b) in enumerate(segs):
            rows = np.flatnonzero(pixels[:, a:b].any(axis=1))
            height = rows[-1] - rows[0] + 1 if len(rows) else 0
            if height == 0 or (b - a) < min_width * height or pixels[:, a:b].sum() < min_px:
                j = i - 1 if i > 0 else i + 1
                lo, hi = min(i, j), max(i, j)
                segs[lo] = [segs[lo][0], segs[hi][1]]
                del segs[hi]
                joined = True
                break
    if len(segs) == 1:
        return whole
    out = []
    for a, b in segs:
        rows = np.flatnonzero(pixels[:, a:b].any(axis=1))
        out.append(np.array([float(a), float(rows[0]), float(b), float(rows[-1] + 1)]))
    return out
