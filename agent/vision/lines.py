"""Counting lines: which tracked objects crossed, in which direction.

Rules that keep counts right (the failure modes of naive counters):
- only confirmed tracks count, so a one-frame false positive never does;
- a crossing means moving from one side of the line, beyond a dead band of
  `hysteresis`, to the other side beyond the band: a box whose centre
  jitters on the line is not counted again and again;
- the side a track was first seen on is remembered while it is still
  tentative, so an object that crosses during its first frames (before it is
  confirmed) is still counted once it is confirmed;
- a track first seen inside the dead band (a vehicle coming out from behind
  another, or out of a merged blob, right at the line) takes the side it
  appeared on as where it came from;
- a track that split out of another's box (two vehicles seen as one box
  until they parted, see tracker.py) starts from the side that box was on,
  so the one that was carried past the line inside it is still counted;
- the crossing must happen between the two ends of the line (with a small
  margin), so traffic in the other carriageway can be kept off a line.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from agent.vision.config import LineConfig
from agent.vision.tally import IN, OUT
from agent.vision.tracker import Track

_END_MARGIN = 0.05  # share of the line's length tolerated beyond its ends


class Crossing:
    __slots__ = ("line", "track_id", "label", "direction", "t")

    def __init__(self, line: str, track_id: int, label: str, direction: str, t: float) -> None:
        self.line = line
        self.track_id = track_id
        self.label = label
        self.direction = direction
        self.t = t

    def __repr__(self) -> str:
        return f"<Crossing {self.line} {self.label} {self.direction} track={self.track_id}>"


class CountingLine:
    def __init__(self, cfg: LineConfig, width: int, height: int, classes: Iterable[str] = ()) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.classes = set(cfg.classes or classes)
        self.ax, self.ay = cfg.start[0] * width, cfg.start[1] * height
        bx, by = cfg.end[0] * width, cfg.end[1] * height
        self.dx, self.dy = bx - self.ax, by - self.ay
        self.length = math.hypot(self.dx, self.dy)
        self.band = cfg.hysteresis * math.hypot(width, height)
        # track id -> (side it was last definitely on, point it was there)
        self._side: dict[int, tuple[int, tuple[float, float]]] = {}

    def anchor(self, tr: Track) -> tuple[float, float]:
        x1, y1, x2, y2 = tr.box
        if self.cfg.anchor == "bottom":
            return (x1 + x2) / 2, y2
        return (x1 + x2) / 2, (y1 + y2) / 2

    def signed_distance(self, p: tuple[float, float]) -> float:
        """Positive on the right-hand side of start->end in image coordinates
        (y pointing down), which is the side an "in" crossing ends on."""
        cross = self.dx * (p[1] - self.ay) - self.dy * (p[0] - self.ax)
        return cross / self.length

    def _along(self, p: tuple[float, float], q: tuple[float, float]) -> float:
        """Where on the line (0 = start, 1 = end) the path p->q crosses it."""
        dp, dq = self.signed_distance(p), self.signed_distance(q)
        k = dp / (dp - dq) if dp != dq else 0.5
        x, y = p[0] + (q[0] - p[0]) * k, p[1] + (q[1] - p[1]) * k
        return ((x - self.ax) * self.dx + (y - self.ay) * self.dy) / (self.length**2)

    def update(self, tracks: Iterable[Track], t: float) -> list[Crossing]:
        out: list[Crossing] = []
        for tr in tracks:
            if not tr.updated:  # lost this frame: no position to judge
                continue
            if self.classes and tr.label not in self.classes:
                continue
            p = self.anchor(tr)
            d = self.signed_distance(p)
            prev = self._side.get(tr.id)
            if prev is None and tr.parent is not None and tr.parent in self._side:
                # split out of a box that held it with another vehicle: it was where that box was
                prev = self._side[tr.id] = self._side[tr.parent]
            if abs(d) <= self.band:
                if prev is None and d != 0:
                    # first seen in the dead band (it came out from behind
                    # something or out of a merged blob there): the side it
                    # is on is all there is to know where it came from
                    self._side[tr.id] = (1 if d > 0 else -1, p)
                continue  # in the dead band: keep the last definite side
            side = 1 if d > 0 else -1
            if prev is None:
                self._side[tr.id] = (side, p)
                continue
            if prev[0] == side:
                self._side[tr.id] = (side, p)
                continue
            if not tr.confirmed:
                # remember nothing new: the crossing is judged once confirmed
                continue
            self._side[tr.id] = (side, p)
            u = self._along(prev[1], p)
            if -_END_MARGIN <= u <= 1 + _END_MARGIN:
                entering = side > 0
                if self.cfg.invert:
                    entering = not entering
                out.append(Crossing(self.name, tr.id, tr.label, IN if entering else OUT, t))
        return out

    def forget(self, track_ids: Iterable[int]) -> None:
        for i in track_ids:
            self._side.pop(i, None)
