"""Multi-object tracker: constant-velocity Kalman filter plus IoU association,
in two stages like ByteTrack.

Why two stages: a car half hidden behind a bus is still detected, but with a
low score. Dropping those detections breaks the car's track and makes a new id
(and a second count) when it reappears; using them to *start* tracks brings
in false positives. So strong detections are matched first, then the weak ones
may only continue tracks that already exist.

Why confirmation: one-frame false positives (a shadow, a reflection) must not
count. A track is confirmed only after `min_hits` matched frames; counters
ignore unconfirmed tracks, and a tentative track that misses a frame is
dropped (unless a followed vehicle's box covers it: see merges below).

Why buffered IoU: at 5 frames a second a small fast vehicle can move more than
its own length between frames, so its boxes do not overlap at all before the
filter has learnt its velocity. Boxes are enlarged by `buffer` for matching
(Cascade-Buffered IoU, Yang et al. 2022).

Why a recent label: where a vehicle leaves the image at the same edge, and at
the same moment, as another enters it (or one is hidden behind a bus the
other pulls out of), a track can pass from one to the other. Its label is
therefore a vote that forgets: each detection's label counts 1, halving every
`LABEL_HALF_LIFE` seconds, so at a counting line the class is what the model
has said about the vehicle now there, while a van called `car` for a frame
or two still stays a van. Measured on rendered traffic, a life-long majority
gave the handed-over vehicle the class of the one before in nearly every
class error the counts had.

Why class-aware association: for the same reason, a confirmed track prefers
detections of its own class: the similarity of a detection with another label
is multiplied by `CLASS_MISMATCH`, so a nearby vehicle of another class loses
against the track's own, and a detection whose class flipped for a frame
still continues the track when it overlaps well.

Why no turning back on weak detections: a followed track may not take a
weak detection that lies wholly behind where its vehicle was, against the
direction it has been moving (both edges of the box moved back, along x or
y). Vehicles do not reverse between two frames; a track that did so had
jumped onto the weak detections of a vehicle going the other way (one a bus
hides), or onto a fragment of the vehicle behind, and crossed the line back
with it: in dense rendered traffic that was a third of the counting errors.
One edge may move back when an occluder cuts the box or lets go of it, but
not both at once. Strong detections are not judged: a vehicle that stops
dead in front of the camera jitters back and forth by more than the margin,
and a strong detection is rarely a fragment.

Why tentative tracks survive a merge: a vehicle just come into view that
passes another in the image (a car in the far lane meeting one in the near
lane) is often seen on its own for a frame, then only as part of the other
one's box (motion mode makes one blob of both), then on its own again. A
tentative track is normally dropped at its first miss, so the vehicle's
track starts again after the merge, and when the merge was at a counting
line the crossing was lost. A tentative track that misses a frame while a
followed vehicle's box covers it (`MERGED_INSIDE` of its box) is kept for
up to `MERGED_MISSES` frames. In dense rendered traffic in motion mode this
recovered about one in six of the missed far-lane crossings.

Why a track remembers what it split out of: two vehicles that come into
view overlapping (side by side in two lanes, or one close behind the other)
give one box, followed as one track, until they part. When they part, one
of them keeps the track and the other starts a new one, and if it is past a
counting line by then, the line has no side to count it from. A track born
from a strong detection that lay mostly (`split_from`) inside a followed
track's box of the previous frame, and is at least half as tall, records
that track as its `parent`; the line gives it the side the parent was on
(lines.py).

Why weak births: a car that comes out from behind a truck just at a counting
line is often detected weakly on one side and strongly only on the other.
A weak detection left over (at least half-way between `low_score` and
`high_score`, not a second box of a followed vehicle) therefore starts a
tentative track with no hit: it is confirmed only by `min_hits` strong
detections, as any track, but the line has seen which side it came from.

Time is in seconds (media time for files, monotonic for live cameras), so the
filter copes with an uneven frame rate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agent.vision.config import TrackerConfig

TENTATIVE, CONFIRMED, LOST = "tentative", "confirmed", "lost"
LABEL_HALF_LIFE = 1.0  # s: about the last 5 to 10 detections at 5 fps decide the class
CLASS_MISMATCH = 0.5  # similarity factor for a detection of another class than the track's
VELOCITY_HITS = 4  # matches after which a track's velocity is trusted to tell forward from back
BACK_TOLERANCE = 0.1  # share of the box size both edges may move back (detector jitter) before a match counts as turning back


def iou_matrix(a: np.ndarray, b: np.ndarray, buffer: float = 0.0) -> np.ndarray:
    """IoU of every box in a (N,4) with every box in b (M,4), boxes x1,y1,x2,y2,
    each enlarged by `buffer` times its size (half on each side)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float64)
    a = _grow(a.astype(np.float64), buffer)
    b = _grow(b.astype(np.float64), buffer)
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def _grow(boxes: np.ndarray, buffer: float) -> np.ndarray:
    if buffer <= 0:
        return boxes
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    dx, dy = w * buffer / 2, h * buffer / 2
    return np.stack([boxes[:, 0] - dx, boxes[:, 1] - dy, boxes[:, 2] + dx, boxes[:, 3] + dy], axis=1)


# a tentative track whose box a followed vehicle's box swallows is kept this many frames
MERGED_MISSES = 2
MERGED_INSIDE = 0.7


def _inside(box: np.ndarray, others: np.ndarray) -> float:
    """Largest share of `box`'s area that lies inside one of `others`."""
    ix = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    area = max((box[2] - box[0]) * (box[3] - box[1]), 1e-9)
    return float((ix * iy).max() / area)


def split_from(box: np.ndarray, parents: list[tuple[int, np.ndarray]], inside: float = 0.6, height: float = 0.5) -> int | None:
    """The id of the followed track whose previous box held most of `box`, a
    vehicle as tall as at least `height` of it: two vehicles that one box
    held together (a single blob in motion mode) and that part."""
    best, best_share = None, inside
    for tid, pb in parents:
        share = _inside(box, pb[None, :])
        if share >= best_share and box[3] - box[1] >= height * (pb[3] - pb[1]):
            best, best_share = tid, share
    return best


def second_box(box: np.ndarray, live: np.ndarray) -> bool:
    """Whether a leftover detection is another box of a followed vehicle
    (N,4 `live`), not a new one: a second box the NMS let through, or a
    piece of a bus split in two by a lamp post in front of it."""
    return bool(len(live)) and (iou_matrix(box[None, :], live).max() > 0.7 or _inside(box, live) > 0.8)


def turning_back(tracks: list[Track], dets: np.ndarray, t: float) -> np.ndarray:
    """(N,M) mask: detection m would make confirmed track n move back from
    where it was last seen, against the velocity its filter has learnt, with
    both edges of its box (along x or along y). Axes along which the track
    hardly moves are not judged."""
    out = np.zeros((len(tracks), len(dets)), dtype=bool)
    for i, tr in enumerate(tracks):
        if tr.state == TENTATIVE or tr.hits < VELOCITY_HITS:
            continue
        for axis in (0, 1):
            lo, hi = axis, axis + 2
            v = tr.kf.x[4 + axis] * (t - tr.last_seen)
            size = max(tr.box[hi] - tr.box[lo], 1.0)
            tol = BACK_TOLERANCE * size
            if abs(v) <= tol:
                continue
            sign = 1.0 if v > 0 else -1.0
            moved = np.maximum((dets[:, lo] - tr.box[lo]) * sign, (dets[:, hi] - tr.box[hi]) * sign)
            out[i] |= moved < -tol
    return out


def greedy_match(sim: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Pairs (row, col) in order of decreasing similarity, each row and column
    used once. With the few objects of a street scene this equals the optimal
    assignment in practice and needs no scipy."""
    pairs: list[tuple[int, int]] = []
    if sim.size == 0:
        return pairs
    order = np.argsort(-sim, axis=None)
    used_r: set[int] = set()
    used_c: set[int] = set()
    for flat in order:
        r, c = divmod(int(flat), sim.shape[1])
        if sim[r, c] < threshold:
            break
        if r in used_r or c in used_c:
            continue
        pairs.append((r, c))
        used_r.add(r)
        used_c.add(c)
    return pairs


class KalmanBox:
    """Constant-velocity filter on (cx, cy, w, h); noise scales with the box
    height so near and far objects are treated alike. Predicted and corrected
    in batches by `predict_all` / `update_all`."""

    def __init__(self, box: np.ndarray) -> None:
        cx, cy, w, h = _to_cxcywh(box)
        self.x = np.array([cx, cy, w, h, 0, 0, 0, 0], dtype=np.float64)
        s = max(h, 1.0)
        # velocity unknown at birth: large variance so the second measurement sets it
        self.P = np.diag([(0.1 * s) ** 2] * 4 + [(3.0 * s) ** 2] * 4)

    def box(self) -> np.ndarray:
        cx, cy, w, h = self.x[:4]
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


_DIAG_POS = (np.arange(4), np.arange(4))
_DIAG_VEL = (np.arange(4, 8), np.arange(4, 8))
_F_CACHE: dict[float, np.ndarray] = {}


def _transition(dt: float) -> np.ndarray:
    """Constant-velocity transition; frame intervals repeat, so they are cached."""
    key = round(dt, 4)
    F = _F_CACHE.get(key)
    if F is None:
        if len(_F_CACHE) > 256:
            _F_CACHE.clear()
        F = np.eye(8)
        F[:4, 4:] = np.eye(4) * key
        _F_CACHE[key] = F
    return F


def predict_all(kfs: list[KalmanBox], dt: float) -> None:
    """Predict every filter at once: one batched matrix product instead of a
    few small ones per track (per-call overhead dominates at 8x8)."""
    if not kfs:
        return
    dt = max(dt, 1e-3)
    F = _transition(dt)
    X = np.stack([k.x for k in kfs]) @ F.T
    P = F @ np.stack([k.P for k in kfs]) @ F.T
    s = np.maximum(X[:, 3], 1.0)
    P[:, _DIAG_POS[0], _DIAG_POS[1]] += ((0.05 * s) ** 2 * dt)[:, None]
    P[:, _DIAG_VEL[0], _DIAG_VEL[1]] += ((1.0 * s) ** 2 * dt)[:, None]
    X[:, 2:4] = np.maximum(X[:, 2:4], 1.0)
    for i, k in enumerate(kfs):
        k.x, k.P = X[i], P[i]


def update_all(kfs: list[KalmanBox], boxes: np.ndarray) -> None:
    """Correct filters with their measured boxes (x1 y1 x2 y2), batched."""
    if not kfs:
        return
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w = np.maximum(b[:, 2] - b[:, 0], 1.0)
    h = np.maximum(b[:, 3] - b[:, 1], 1.0)
    Z = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, w, h], axis=1)
    X = np.stack([k.x for k in kfs])
    P = np.stack([k.P for k in kfs])
    S = P[:, :4, :4] + np.eye(4)[None] * ((0.05 * h) ** 2)[:, None, None]
    K = P[:, :, :4] @ np.linalg.inv(S)
    X = X + (K @ (Z - X[:, :4])[:, :, None])[:, :, 0]
    P = P - K @ P[:, :4, :]
    for i, k in enumerate(kfs):
        k.x, k.P = X[i], P[i]


def _to_cxcywh(box: np.ndarray) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    return (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, 1.0), max(y2 - y1, 1.0)


class Track:
    __slots__ = ("id", "kf", "box", "score", "hits", "state", "last_seen", "born", "_votes", "_voted_at", "updated", "missed", "parent")

    def __init__(self, track_id: int, box: np.ndarray, score: float, label: str, t: float) -> None:
        self.id = track_id
        self.kf = KalmanBox(box)
        self.box = np.asarray(box[:4], dtype=np.float64)  # last measured box
        self.score = score
        self.hits = 1
        self.state = TENTATIVE
        self.last_seen = t
        self.born = t
        self._votes: dict[str, float] = {label: 1.0}  # label -> decayed count
        self._voted_at = t
        self.updated = True  # matched in the latest frame
        self.missed = 0  # consecutive frames without a match
        self.parent: int | None = None  # the followed track whose box it split out of, if any

    @property
    def label(self) -> str:
        """The label most detections gave lately (see the module doc): a
        detector that calls the same van `car` now and then must not split
        its count between classes, and a track handed over to another vehicle
        must take that vehicle's class."""
        return max(self._votes, key=self._votes.__getitem__)

    @property
    def confirmed(self) -> bool:
        return self.state != TENTATIVE

    def _vote(self, label: str, t: float) -> None:
        fade = 0.5 ** (max(t - self._voted_at, 0.0) / LABEL_HALF_LIFE)
        for lab in self._votes:
            self._votes[lab] *= fade
        self._votes[label] = self._votes.get(label, 0.0) + 1.0
        self._voted_at = t

    def _hit(self, box: np.ndarray, score: float, label: str, t: float, min_hits: int) -> None:
        """Bookkeeping of a match; the filter is corrected by the caller (batched)."""
        self.box = np.asarray(box[:4], dtype=np.float64)
        self.score = score
        self.hits += 1
        self.last_seen = t
        self._vote(label, t)
        self.updated = True
        self.missed = 0
        if self.state == LOST or (self.state == TENTATIVE and self.hits >= min_hits):
            self.state = CONFIRMED

    def __repr__(self) -> str:
        return f"<Track {self.id} {self.label} {self.state} hits={self.hits} box={np.round(self.box, 1).tolist()}>"


class Tracker:
    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.cfg = config or TrackerConfig()
        self.tracks: list[Track] = []
        self.removed: list[int] = []  # ids dropped by the latest update
        self._next_id = 1
        self._t: float | None = None

    def update(self, boxes: Any, scores: Any, labels: list[str], t: float) -> list[Track]:
        """Feed one frame's detections (boxes x1,y1,x2,y2 in pixels) taken at
        time `t`; returns the live tracks (tentative, confirmed and lost)."""
        cfg = self.cfg
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        dt = 0.0 if self._t is None else max(t - self._t, 0.0)
        self._t = t
        predict_all([tr.kf for tr in self.tracks], dt)
        # where the followed vehicles were seen in the previous frame: a new track that split out of one of them
        parents = [(tr.id, tr.box.copy()) for tr in self.tracks if tr.state == CONFIRMED and tr.updated]
        for tr in self.tracks:
            tr.updated = False

        high = np.flatnonzero(scores >= cfg.high_score)
        low = np.flatnonzero((scores >= cfg.low_score) & (scores < cfg.high_score))
        confirmed = [tr for tr in self.tracks if tr.state != TENTATIVE]
        tentative = [tr for tr in self.tracks if tr.state == TENTATIVE]

        # stage 1: strong detections against confirmed and lost tracks
        left_high, unmatched_tracks = self._associate(confirmed, high, boxes, scores, labels, t)
        # stage 2: weak detections only keep tracks that were being followed, and only forward
        still_tracked = [tr for tr in unmatched_tracks if tr.state == CONFIRMED]
        left_low, _ = self._associate(still_tracked, low, boxes, scores, labels, t, forward_only=True)
        # stage 3: tentative tracks get what strong detections are left
        left_high, _ = self._associate(tentative, left_high, boxes, scores, labels, t)

        self.removed = []
        alive: list[Track] = []
        held = np.array([tr.box for tr in self.tracks if tr.updated and tr.state == CONFIRMED]).reshape(-1, 4)
        for tr in self.tracks:
            if not tr.updated:
                tr.missed += 1
                if tr.state == TENTATIVE and tr.missed <= MERGED_MISSES and len(held) and _inside(tr.kf.box(), held) >= MERGED_INSIDE:
                    alive.append(tr)
                    continue
                if tr.state == TENTATIVE or t - tr.last_seen > cfg.max_lost:
                    self.removed.append(tr.id)
                    continue
                tr.state = LOST
            alive.append(tr)
        self.tracks = alive

        # new tracks from strong leftovers, unless they duplicate a live track
        live_boxes = np.array([tr.kf.box() for tr in self.tracks if tr.state == CONFIRMED]).reshape(-1, 4)
        for d in left_high:
            if second_box(boxes[d], live_boxes):
                continue
            tr = Track(self._next_id, boxes[d], float(scores[d]), labels[d], t)
            tr.parent = split_from(boxes[d], parents)
            self._next_id += 1
            if cfg.min_hits <= 1:
                tr.state = CONFIRMED
            self.tracks.append(tr)
        self._weak_births(left_low, boxes, scores, labels, t)
        return list(self.tracks)

    def _weak_births(self, dets: np.ndarray, boxes: np.ndarray, scores: np.ndarray, labels: list[str], t: float) -> None:
        """Tentative tracks with no hit yet from weak leftovers: confirmation
        still takes `min_hits` strong detections, but a counting line learns
        the side the vehicle was first seen on one frame earlier."""
        mid = (self.cfg.low_score + self.cfg.high_score) / 2
        confirmed = np.array([tr.kf.box() for tr in self.tracks if tr.state == CONFIRMED]).reshape(-1, 4)
        for d in dets:
            if scores[d] < mid:
                continue
            if second_box(boxes[d], confirmed):
                continue  # as for strong births
            newer = np.array([tr.box for tr in self.tracks if tr.state == TENTATIVE]).reshape(-1, 4)
            if len(newer) and iou_matrix(boxes[d : d + 1], newer).max() > 0.3:
                continue  # a weaker box of a vehicle already starting a track
            tr = Track(self._next_id, boxes[d], float(scores[d]), labels[d], t)
            tr.hits = 0
            self._next_id += 1
            self.tracks.append(tr)

    def _associate(
        self,
        tracks: list[Track],
        dets: np.ndarray,
        boxes: np.ndarray,
        scores: np.ndarray,
        labels: list[str],
        t: float,
        *,
        forward_only: bool = False,
    ) -> tuple[np.ndarray, list[Track]]:
        """Match `tracks` with detections `dets` (indices); returns the
        detections and tracks left over."""
        # cascade: tight boxes first, then a larger buffer for tracks seen in
        # the previous frame (a young track has no velocity estimate yet, a
        # vehicle braking hard leaves its prediction). Lost tracks never get
        # it: their prediction has drifted and would grab a newcomer
        # entering where they left.
        dets, rest = self._match(tracks, dets, boxes, scores, labels, t, self.cfg.buffer, forward_only)
        seen = [tr for tr in rest if tr.state != LOST]
        dets, seen_rest = self._match(seen, dets, boxes, scores, labels, t, 3 * self.cfg.buffer, forward_only)
        return dets, [tr for tr in rest if tr.state == LOST] + seen_rest

    def _match(
        self,
        tracks: list[Track],
        dets: np.ndarray,
        boxes: np.ndarray,
        scores: np.ndarray,
        labels: list[str],
        t: float,
        buffer: float,
        forward_only: bool,
    ) -> tuple[np.ndarray, list[Track]]:
        if not tracks or len(dets) == 0:
            return dets, list(tracks)
        pred = np.array([tr.kf.box() for tr in tracks])
        sim = iou_matrix(pred, boxes[dets], buffer)
        if forward_only:
            sim[turning_back(tracks, boxes[dets], t)] = 0.0
        own = [(i, tr.label) for i, tr in enumerate(tracks) if tr.state != TENTATIVE]
        if own:
            rows = [i for i, _ in own]
            other = np.array([lab for _, lab in own])[:, None] != np.array([labels[int(d)] for d in dets])[None, :]
            sim[rows] = np.where(other, sim[rows] * CLASS_MISMATCH, sim[rows])
        pairs = greedy_match(sim, self.cfg.match_iou)
        used_t, used_d = set(), set()
        for ti, di in pairs:
            d = int(dets[di])
            tracks[ti]._hit(boxes[d], float(scores[d]), labels[d], t, self.cfg.min_hits)
            used_t.add(ti)
            used_d.add(di)
        update_all([tracks[ti].kf for ti, _ in pairs], boxes[[int(dets[di]) for _, di in pairs]])
        left = np.array([d for i, d in enumerate(dets) if i not in used_d], dtype=np.int64)
        return left, [tr for i, tr in enumerate(tracks) if i not in used_t]
