"""Particulate matter sensors on their own serial port: Nova SDS011 and Plantower PMS5003.

Both stream frames by themselves in their factory (active) mode: the SDS011
once a second, the PMS5003 every 0.2 to 2.3 s. Values are averaged over
report_interval. Metrics: pm2_5 and pm10 (SDS011), pm1_0, pm2_5 and pm10
(PMS5003), all in ug/m3; the PMS5003 can add particle counts per 0.1 L.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from agent.readings import Reading
from drivers.codecs import pms5003, sds011
from drivers.serial.reader import Events
from drivers.serial.streaming import MEAN, StreamingSensorDriver

if TYPE_CHECKING:
    from drivers.serial.config import Pms5003Config

UG_M3 = "ug/m3"
PER_DL = "/dL"  # particles per 0.1 litre, as the PMS5003 counts them


class Sds011Driver(StreamingSensorDriver):
    config_model = "drivers.serial.config:Sds011Config"
    aggregate: ClassVar[str] = MEAN
    metrics: ClassVar[tuple[tuple[str, str], ...]] = (("pm2_5", UG_M3), ("pm10", UG_M3))

    def scan_stream(self, buf: bytes) -> tuple[Events, bytes]:
        return sds011.scan(buf)

    def frame_values(self, frame: dict[str, Any]) -> dict[str, float] | None:
        if frame.get("type") != "data":
            return None  # replies to commands carry no measurement
        return {"pm2_5": frame["pm2_5"], "pm10": frame["pm10"]}

    def make_readings(self, values: dict[str, float]) -> list[Reading]:
        return [self.ctx.reading(m, round(values[m], 1), unit) for m, unit in self.metrics if m in values]


COUNT_FIELDS = ("count_0_3", "count_0_5", "count_1_0", "count_2_5", "count_5_0", "count_10")


class Pms5003Driver(StreamingSensorDriver):
    config_model = "drivers.serial.config:Pms5003Config"
    aggregate: ClassVar[str] = MEAN

    def __init__(self, config: Pms5003Config, bus: Any, ctx: Any) -> None:
        super().__init__(config, bus, ctx)
        self.config: Pms5003Config = config
        metrics = [("pm1_0", UG_M3), ("pm2_5", UG_M3), ("pm10", UG_M3)]
        if config.particle_counts:
            metrics += [(name, PER_DL) for name in COUNT_FIELDS]
        self.metrics = tuple(metrics)  # type: ignore[misc]

    def scan_stream(self, buf: bytes) -> tuple[Events, bytes]:
        return pms5003.scan(buf)

    def frame_values(self, frame: dict[str, Any]) -> dict[str, float] | None:
        suffix = "_cf1" if self.config.cf1 else ""
        values = {m: float(frame[m + suffix]) for m in ("pm1_0", "pm2_5", "pm10")}
        if self.config.particle_counts:
            values.update({name: float(frame[name]) for name in COUNT_FIELDS})
        return values

    def make_readings(self, values: dict[str, float]) -> list[Reading]:
        out = []
        for metric, unit in self.metrics:
            if metric in values:
                digits = 0 if unit == PER_DL else 1
                out.append(self.ctx.reading(metric, round(values[metric], digits), unit))
        return out
