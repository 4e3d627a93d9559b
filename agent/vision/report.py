"""Turns the worker's events into readings, one set per camera per report
interval. Only numbers leave the device.

Readings (device = camera name; the element is named in `detail`):
  <class plural>_in / _out  {count}  line=<line>   crossings in the interval
  occupied                  (0/1)     bay=<bay>     debounced bay state
  free_spaces               {count}  area=<area>   free bays of a parking area
  zone_objects              {count}  zone=<zone>   objects in the zone now
  zone_occupancy            %        zone=<zone>   share of the interval the zone held an object
  fill_level                %        bin=<bin>
  overflow                  (bool)   bin=<bin>
Counts are sent as 0 for quiet intervals (0 cars is data, a gap is not). When
no frame of the camera was analysed during an interval (worker restarting,
stream lost) the counts are sent with status `offline` and no value, so the
platform does not mistake an outage for an empty road.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from agent.readings import OFFLINE, Reading
from agent.vision.tally import IN, OUT, IntervalCounts, free_spaces

if TYPE_CHECKING:
    from agent.vision.config import CameraConfig

_IRREGULAR = {"person": "people", "pedestrian": "pedestrians", "bus": "buses", "people": "people"}


def plural(label: str) -> str:
    """`car` -> `cars`: metric names speak of what is counted."""
    label = "".join(ch if ch.isalnum() else "_" for ch in label.lower()).strip("_") or "object"
    if label in _IRREGULAR:
        return _IRREGULAR[label]
    return label if label.endswith("s") else label + "s"


class CameraReport:
    def __init__(self, cam: CameraConfig) -> None:
        self.cam = cam
        self.counts = IntervalCounts()
        for line in cam.lines:
            for label in line.classes or cam.classes or ([cam.motion_label] if cam.mode == "motion" else []):
                self.counts.declare(line.name, label)
        self.zone_value: dict[str, int | None] = {z.name: None for z in cam.zones}
        self._zone_since: dict[str, float] = {}
        self._zone_occupied_s: dict[str, float] = {z.name: 0.0 for z in cam.zones}
        self.bins: dict[str, tuple[float, bool]] = {}
        self.analysed_in_interval = 0
        self.interval_start = time.monotonic()
        self.last_error = ""

    def count(self, line: str, label: str, direction: str) -> None:
        self.counts.add(line, label, direction)

    def zone(self, name: str, value: int | None, mono: float) -> None:
        if name not in self.zone_value:
            return
        self._close_zone_span(name, mono)
        self.zone_value[name] = value

    def _close_zone_span(self, name: str, now: float) -> None:
        since = self._zone_since.get(name, self.interval_start)
        if self.zone_value.get(name):
            self._zone_occupied_s[name] += max(now - max(since, self.interval_start), 0.0)
        self._zone_since[name] = now

    def readings(self, stamp: Callable[..., Reading], now: float | None = None) -> list[Reading]:
        now = time.monotonic() if now is None else now
        dev = self.cam.name
        out: list[Reading] = []
        live = self.analysed_in_interval > 0
        why = self.last_error or "no frame analysed in the interval"
        for (line, label, direction), n in sorted(self.counts.take().items()):
            metric = f"{plural(label)}_{'in' if direction == IN else 'out' if direction == OUT else direction}"
            if live:
                out.append(stamp(dev, metric, n, "{count}", detail=f"line={line}"))
            else:
                out.append(stamp(dev, metric, None, "{count}", status=OFFLINE, detail=f"line={line}; {why}"))
        areas: dict[str, dict[str, int | None]] = {}
        span = max(now - self.interval_start, 1e-9)
        for z in self.cam.zones:
            value = self.zone_value[z.name]
            self._close_zone_span(z.name, now)
            if z.kind == "bay":
                areas.setdefault(z.area, {})[z.name] = value
                if value is not None:
                    out.append(stamp(dev, "occupied", int(value > 0), "", detail=f"bay={z.name}"))
            elif value is not None:
                out.append(stamp(dev, "zone_objects", int(value), "{count}", detail=f"zone={z.name}"))
                share = min(self._zone_occupied_s[z.name] / span, 1.0)
                out.append(stamp(dev, "zone_occupancy", round(100.0 * share, 1), "%", detail=f"zone={z.name}"))
            self._zone_occupied_s[z.name] = 0.0
        for area, bays in sorted(areas.items()):
            free = free_spaces(bays)
            if free is not None:
                out.append(stamp(dev, "free_spaces", free, "{count}", detail=f"area={area}"))
        for name, (level, overflow) in sorted(self.bins.items()):
            out.append(stamp(dev, "fill_level", level, "%", detail=f"bin={name}"))
            out.append(stamp(dev, "overflow", bool(overflow), "", detail=f"bin={name}"))
        self.analysed_in_interval = 0
        self.interval_start = now
        return out
