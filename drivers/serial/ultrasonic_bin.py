"""Fill level of a waste bin from a MaxBotix ultrasonic rangefinder above it.

The sensor streams `R1234<CR>` several times a second. Distances are taken as
the median over report_interval (one echo off a wasp or a falling bag must not
move the level), converted to millimetres, and turned into a fill level from
the bin depth and how far above the rim the sensor sits. A distance outside
that span is published clamped, with status out_of_range, never silently.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from agent.readings import OUT_OF_RANGE, Reading
from drivers.codecs import maxbotix
from drivers.serial.reader import Events
from drivers.serial.streaming import MEDIAN, StreamingSensorDriver

if TYPE_CHECKING:
    from drivers.serial.config import UltrasonicBinConfig


class UltrasonicBinDriver(StreamingSensorDriver):
    config_model = "drivers.serial.config:UltrasonicBinConfig"
    aggregate: ClassVar[str] = MEDIAN
    metrics: ClassVar[tuple[tuple[str, str], ...]] = (("fill_level", "%"), ("distance", "mm"))

    def __init__(self, config: UltrasonicBinConfig, bus: Any, ctx: Any) -> None:
        super().__init__(config, bus, ctx)
        self.config: UltrasonicBinConfig = config

    def scan_stream(self, buf: bytes) -> tuple[Events, bytes]:
        return maxbotix.scan(buf)

    def frame_values(self, frame: dict[str, Any]) -> dict[str, float] | None:
        return {"distance": maxbotix.to_mm(frame["range"], self.config.unit)}

    def make_readings(self, values: dict[str, float]) -> list[Reading]:
        c = self.config
        distance = round(values["distance"], 1)
        r = self.ctx.reading
        if distance >= c.max_range:
            detail = f"no echo (sensor reports {distance:g} mm, its no-target value): the bin may be open, tilted or the sensor blocked"
            return [
                r("fill_level", None, "%", status=OUT_OF_RANGE, detail=detail),
                r("distance", distance, "mm", status=OUT_OF_RANGE, detail=detail),
            ]
        percent, out_of_range = maxbotix.fill_percent(distance, c.bin_depth, c.sensor_offset)
        fill = round(percent, 1)
        if not out_of_range:
            return [r("fill_level", fill, "%"), r("distance", distance, "mm")]
        if distance < c.sensor_offset:
            why = f"distance {distance:g} mm is above the rim (sensor_offset {c.sensor_offset:g} mm): overfull or lid closed; clamped to 100%"
        else:
            why = f"distance {distance:g} mm is below the bottom (sensor_offset + bin_depth = {c.sensor_offset + c.bin_depth:g} mm); clamped to 0%"
        return [r("fill_level", fill, "%", status=OUT_OF_RANGE, detail=why), r("distance", distance, "mm")]
