"""What the motion detector remembers between frames: one `Mover` per moving
thing, with its box and speed. Blobs alone cannot count traffic where vehicles
overtake or pass each other: two vehicles that touch in the image become one
blob, and a car behind a bus disappears. The memory keeps each vehicle it has
followed on its own for a few frames apart from the others:

- a blob holding the predicted boxes of several known movers is cut along
  those predictions (each mover carries on at its own speed, and the blob's
  outer edges correct whichever mover reaches them);
- a known mover whose predicted box lies inside a blob other movers follow
  coasts at its speed for a while (hidden behind a nearer vehicle);
- a box edge that touches the frame border or another blob is not the
  vehicle's outline, so it never sets the speed, and a vehicle seen whole
  once keeps its size while a nearer one covers part of it (the middle of
  the part that shows is not the middle of the vehicle);
- pieces of one vehicle (a cab and its box, a bus cut by a lamp post) that
  touch and move at the same speed for a few frames become one mover, and
  a blob cut in two along the ground line is joined again where one such
  mover covers both pieces.

Boxes are x1, y1, x2, y2 in pixels of the detector's work frame; speeds in
pixels per analysed frame.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

Box = np.ndarray  # (4,) float64: x1, y1, x2, y2


def clip_box(b: Box, w: int, h: int) -> Box:
    return np.array([max(b[0], 0.0), max(b[1], 0.0), min(b[2], float(w)), min(b[3], float(h))])


def box_area(b: Box) -> float:
    return max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0)


def overlap_area(a: Box, b: Box) -> float:
    return max(min(a[2], b[2]) - max(a[0], b[0]), 0.0) * max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)


def pixel_span(b: Box, w: int, h: int) -> tuple[int, int, int, int]:
    """Integer pixel rectangle covering the box, inside the frame."""
    x1, y1 = max(int(np.floor(b[0])), 0), max(int(np.floor(b[1])), 0)
    x2, y2 = min(int(np.ceil(b[2])), w), min(int(np.ceil(b[3])), h)
    return x1, y1, x2, y2


class Mover:
    __slots__ = ("id", "box", "v", "seen", "hidden", "whole", "size", "emit")

    def __init__(self, mover_id: int, box: Box) -> None:
        self.id = mover_id
        self.box = np.asarray(box, dtype=np.float64).copy()
        self.v = np.zeros(2)  # px per frame
        self.seen = 1  # frames it was measured or cut out of a blob
        self.hidden = 0  # consecutive frames coasted behind something nearer
        self.whole = False  # pieces of it were seen moving together: one vehicle
        self.size: np.ndarray | None = None  # width, height when last seen whole
        self.emit: Box = self.box  # the box reported for the current frame

    def predicted(self, w: int, h: int) -> Box:
        """Box in the next frame at constant speed. A vehicle still coming in
        keeps its edge on the frame border: the rest of it is not seen yet."""
        b = self.box + np.array([self.v[0], self.v[1], self.v[0], self.v[1]])
        if self.box[0] <= 0.5 and self.v[0] > 0:
            b[0] = self.box[0]
        if self.box[2] >= w - 0.5 and self.v[0] < 0:
            b[2] = self.box[2]
        if self.box[1] <= 0.5 and self.v[1] > 0:
            b[1] = self.box[1]
        if self.box[3] >= h - 0.5 and self.v[1] < 0:
            b[3] = self.box[3]
        return b

    def __repr__(self) -> str:
        return f"<Mover {self.id} box={np.round(self.box).tolist()} v={np.round(self.v, 1).tolist()} seen={self.seen} hidden={self.hidden}>"


class MoverMemory:
    def __init__(
        self,
        *,
        claim: float = 0.35,
        known_after: int = 3,
        min_speed: float = 0.5,
        snap: float = 0.3,
        speed_gain: float = 0.5,
        max_hidden: int = 25,
        hidden_cover: float = 0.5,
        cohere_frames: int = 3,
        cohere_tolerance: float = 0.3,
    ) -> None:
        self.claim = claim  # share of a mover's predicted box a blob must hold to be its blob
        self.known_after = known_after  # frames before a mover's speed is trusted
        self.min_speed = min_speed  # px/frame: slower movers are not used to cut blobs
        self.snap = snap  # how far (share of its size) a blob edge may be from a predicted edge to correct it
        self.speed_gain = speed_gain  # weight of a new speed measurement
        self.max_hidden = max_hidden  # frames a mover may coast unseen (2.5 s at 10 fps)
        self.hidden_cover = hidden_cover  # share of a coasting mover's box that must be covered by other movers' blobs
        self.cohere_frames = cohere_frames
        self.cohere_tolerance = cohere_tolerance
        self.movers: list[Mover] = []
        self._next_id = 1
        self._together: dict[tuple[int, int], int] = {}  # touching pieces: frames moving alike

    def _known(self, m: Mover) -> bool:
        return m.seen >= self.known_after

    # ------------------------------------------------------------ blobs
    def rejoin(self, pieces: list[Box], w: int, h: int) -> list[Box]:
        """Neighbouring pieces of one blob, cut where its ground line jumps,
        that one mover known to be a single vehicle covers: join them again.
        A truck's cab whose dark lower half looks like shadow stands on a
        higher line than its box, yet it is not a second vehicle."""
        for m in self.movers:
            if not (self._known(m) and m.whole and not m.hidden):
                continue
            p = m.predicted(w, h)
            gx, gy = 0.1 * (p[2] - p[0]) + 2, 0.1 * (p[3] - p[1]) + 2
            reach = np.array([p[0] - gx, p[1] - gy, p[2] + gx, p[3] + gy])
            inside = [i for i, b in enumerate(pieces) if overlap_area(reach, b) >= 0.8 * box_area(b)]
            if len(inside) >= 2 and inside == list(range(inside[0], inside[-1] + 1)):
                lo, hi = inside[0], inside[-1]
                span = np.array([pieces[i] for i in inside])
                joined = np.array([span[:, 0].min(), span[:, 1].min(), span[:, 2].max(), span[:, 3].max()])
                pieces = pieces[:lo] + [joined] + pieces[hi + 1 :]
        return pieces

    # ----------------------------------------------------------- frames
    def follow(self, blobs: list[Box], fg: np.ndarray) -> list[Box]:
        """One frame: the blobs found in it and its foreground mask. Returns
        a box per vehicle (cut out of merged blobs, coasting when hidden)."""
        h, w = fg.shape
        movers = self.movers
        preds = [m.predicted(w, h) for m in movers]
        claims = self._claims(preds, blobs, w, h)
        # what may hide a mover: the blobs other movers are following
        cover = np.zeros_like(fg)
        for j in claims:
            x1, y1, x2, y2 = pixel_span(blobs[j], w, h)
            cover[y1:y2, x1:x2] = fg[y1:y2, x1:x2]
        kept: list[Mover] = []
        done: set[int] = set()
        for j, blob in enumerate(blobs):
            ks = claims.get(j, [])
            outline = outline_edges(blobs, j, w, h)
            behind = touched_edges(blobs, j, nearer_only=True)
            if not ks:
                kept.append(self._new(blob))
                continue
            known = [k for k in ks if self._known(movers[k]) and abs(movers[k].v[0]) + abs(movers[k].v[1]) >= self.min_speed]
            if len(ks) >= 2 and len(known) == len(ks):
                for k in ks:
                    self._cut(movers[k], preds[k], [preds[q] for q in ks], blob, outline, w, h)
                    kept.append(movers[k])
                    done.add(k)
                continue
            # one mover (or some not known well enough to cut): the blob is the measurement
            k: int | None = max(ks, key=lambda q: overlap_area(clip_box(preds[q], w, h), blob))
            if k in known and stands_behind(preds[k], blob) and box_area(blob) > 1.5 * box_area(preds[k]):
                # a nearer vehicle came in front of it (from the frame edge, or
                # never seen on its own): the blob is that one, this one goes on
                # behind it
                kept.append(self._new(blob))
                k = None
            else:
                self._measure(movers[k], blob, outline, behind, w, h)
                kept.append(movers[k])
            for q in ks:
                done.add(q)
                if q != k and q in known and self._coast(movers[q], preds[q], cover, w, h):
                    kept.append(movers[q])
        for k, m in enumerate(movers):
            if k not in done and self._known(m) and self._coast(m, preds[k], cover, w, h):
                kept.append(m)
        self.movers = self._fuse(kept, w, h)
        return [m.emit for m in self.movers if box_area(m.emit) > 0]

    def _new(self, blob: Box) -> Mover:
        m = Mover(self._next_id, blob)
        self._next_id += 1
        return m

    def _claims(self, preds: list[Box], blobs: list[Box], w: int, h: int) -> dict[int, list[int]]:
        """blob index -> movers whose predicted box lies mostly in it."""
        claims: dict[int, list[int]] = {}
        for k, p in enumerate(preds):
            pc = clip_box(p, w, h)
            a = box_area(pc)
            if a <= 0 or not blobs:
                continue
            shares = [overlap_area(pc, b) / a for b in blobs]
            best = int(np.argmax(shares))
            if shares[best] >= self.claim:
                claims.setdefault(best, []).append(k)
        return claims

    def _cut(self, m: Mover, pred: Box, preds: list[Box], blob: Box, outline: list[int], w: int, h: int) -> None:
        """Vehicles known apart, now in one blob: this one carries on at its
        own speed; an outer edge of the blob it reaches shifts it there."""
        box = pred.copy()
        for e in outline:
            extreme = min(p[e] for p in preds) if e in (0, 1) else max(p[e] for p in preds)
            if pred[e] != extreme:
                continue
            axis = 0 if e in (0, 2) else 1
            size = box[axis + 2] - box[axis]
            if abs(box[e] - blob[e]) <= self.snap * size + 2:
                box[[axis, axis + 2]] += blob[e] - box[e]
        m.box = box
        m.emit = clip_box(box, w, h)
        m.seen += 1
        m.hidden = 0

    def _measure(self, m: Mover, blob: Box, outline: list[int], behind: set[int], w: int, h: int) -> None:
        """The blob is this mover: take its box, and its speed from the edges
        that are the vehicle's outline in both frames."""
        prev = m.box
        gain = 1.0 if m.seen == 1 else self.speed_gain
        for axis, (a, c) in enumerate(((0, 2), (1, 3))):
            limit = (w, h)[axis]
            moves = [blob[e] - prev[e] for e in (a, c) if e in outline and 0.5 < prev[e] < limit - 0.5]
            if moves:
                m.v[axis] += gain * (float(np.mean(moves)) - m.v[axis])
        box = np.asarray(blob, dtype=np.float64).copy()
        if len(outline) == 4:
            m.size = box[2:] - box[:2]
        elif m.size is not None:
            # partly hidden behind a nearer vehicle: the edge that is its outline
            # and the size it had when seen whole place it, not the part that shows
            for axis, (a, c) in enumerate(((0, 2), (1, 3))):
                if box[c] - box[a] >= m.size[axis]:
                    continue
                if a in outline and c in behind:
                    box[c] = box[a] + m.size[axis]
                elif c in outline and a in behind:
                    box[a] = box[c] - m.size[axis]
        m.box = box
        m.emit = clip_box(box, w, h)
        m.seen += 1
        m.hidden = 0

    def _coast(self, m: Mover, pred: Box, cover: np.ndarray, w: int, h: int) -> bool:
        """Keep a known mover going while nearer vehicles hide it; drop it
        when its place is empty road (it left, or was never there)."""
        x1, y1, x2, y2 = pixel_span(pred, w, h)
        if x2 <= x1 or y2 <= y1 or m.hidden >= self.max_hidden:
            return False
        if float(cover[y1:y2, x1:x2].mean()) < self.hidden_cover:
            return False
        m.box = pred
        m.emit = clip_box(pred, w, h)
        m.hidden += 1
        return True

    def _fuse(self, movers: list[Mover], w: int, h: int) -> list[Mover]:
        """Movers that are one vehicle: one inside the other moving alike (a
        coasting copy of a vehicle found again), or touching and moving at
        the same speed for `cohere_frames` (two pieces of one vehicle)."""
        together: dict[tuple[int, int], int] = {}
        changed = True
        while changed:
            changed = False
            for i, j in combinations(range(len(movers)), 2):
                a, b = movers[i], movers[j]
                if a.seen >= 2 and b.seen >= 2 and abs(a.v[0] - b.v[0]) > 0.25 * max(abs(a.v[0]), abs(b.v[0])) + 1.0:
                    continue
                A, B = a.box, b.box
                x_ov = min(A[2], B[2]) - max(A[0], B[0])
                y_ov = min(A[3], B[3]) - max(A[1], B[1])
                inner, outer = (a, b) if box_area(A) <= box_area(B) else (b, a)
                if max(x_ov, 0) * max(y_ov, 0) >= 0.8 * min(box_area(A), box_area(B)) and not stands_behind(inner.box, outer.box):
                    drop = b if (a.hidden, -a.seen) <= (b.hidden, -b.seen) else a
                elif self._cohere(a, b, x_ov, y_ov, together):
                    keep, drop = (a, b) if a.seen >= b.seen else (b, a)
                    keep.box = np.array([min(A[0], B[0]), min(A[1], B[1]), max(A[2], B[2]), max(A[3], B[3])])
                    keep.emit = clip_box(keep.box, w, h)
                    keep.whole = True
                else:
                    continue
                movers.remove(drop)
                changed = True
                break
        self._together = together
        return movers

    def _cohere(self, a: Mover, b: Mover, x_ov: float, y_ov: float, together: dict[tuple[int, int], int]) -> bool:
        key = (min(a.id, b.id), max(a.id, b.id))
        speed = max(abs(a.v[0]), abs(b.v[0]))
        alike = (
            self._known(a)
            and self._known(b)
            and not a.hidden
            and not b.hidden
            and speed >= self.min_speed
            and abs(a.v[0] - b.v[0]) <= self.cohere_tolerance * speed + 0.5
        )
        if x_ov >= -2 and y_ov >= -2 and alike and not two_lanes(a.box, b.box, x_ov):
            together[key] = self._together.get(key, 0) + 1
        return together.get(key, 0) >= self.cohere_frames


def stands_behind(inner: Box, outer: Box, step: float = 0.15) -> bool:
    """Whether `inner` touches the road clearly higher in the image than
    `outer` (by more than `step` of the outer's height): a vehicle further
    from the camera, seen over or hidden behind the nearer one, not a piece
    or a copy of it."""
    return outer[3] - inner[3] > max(4.0, step * (outer[3] - outer[1]))


def two_lanes(a: Box, b: Box, x_ov: float) -> bool:
    """Whether two touching pieces that move alike are two vehicles in two
    lanes rather than pieces of one (a truck's cab and its box): they stand
    on two ground lines and either one is above the other in the image, or
    the one further away rises above the nearer one (a cab is no taller than
    its box)."""
    if stands_behind(a, b):
        far, near = a, b
    elif stands_behind(b, a):
        far, near = b, a
    else:
        return False
    above = x_ov > 0.5 * min(a[2] - a[0], b[2] - b[0])
    return above or far[1] < near[1] - max(2.0, 0.1 * (near[3] - near[1]))


def outline_edges(blobs: list[Box], j: int, w: int, h: int) -> list[int]:
    """Edges (0 left, 1 top, 2 right, 3 bottom) of blob j that are the outline
    of what moves: not on the frame border, not where another blob begins
    (there the vehicle may go on behind, or in front of, its neighbour)."""
    b = blobs[j]
    on_border = (b[0] <= 0.5, b[1] <= 0.5, b[2] >= w - 0.5, b[3] >= h - 0.5)
    touched = touched_edges(blobs, j)
    return [e for e in range(4) if not on_border[e] and e not in touched]


def touched_edges(blobs: list[Box], j: int, nearer_only: bool = False) -> set[int]:
    """Edges of blob j where another blob begins; with `nearer_only`, only
    a blob standing lower in the image, nearer the camera: one that hides
    the rest of this vehicle."""
    b = blobs[j]
    edges: set[int] = set()
    for i, o in enumerate(blobs):
        if i == j or (nearer_only and o[3] <= b[3] + 2):
            continue
        if min(b[3], o[3]) - max(b[1], o[1]) > 0:
            if o[0] < b[0] <= o[2] + 2:
                edges.add(0)
            if o[0] - 2 <= b[2] < o[2]:
                edges.add(2)
        if min(b[2], o[2]) - max(b[0], o[0]) > 0:
            if o[1] < b[1] <= o[3] + 2:
                edges.add(1)
            if o[1] - 2 <= b[3] < o[3]:
                edges.add(3)
    return edges
