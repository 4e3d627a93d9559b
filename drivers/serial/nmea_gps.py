"""Position (and optionally time) from an NMEA 0183 GPS/GNSS receiver.

Publishes the latest fix every report_interval: latitude and longitude (deg),
altitude (m), satellites in use and HDOP, from GGA and RMC sentences. Without
a fix the position metrics carry status error and "no fix".

A gateway without an RTC and without network time can take its time from the
receiver (time_source):
- "off": never touch the clock (default);
- "validate": compare the system clock with the GPS time of each valid RMC;
  when they agree within time_tolerance the clock is marked synchronised, so
  readings are stamped as trustworthy. Needs no privileges.
- "set": as validate, but when they disagree the system clock is set from
  GPS first (needs CAP_SYS_TIME: run as root or grant the capability in the
  systemd unit). If setting fails the clock is not marked synchronised.
What was done is in the device status under "time" and logged once.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar

from agent.readings import ERROR, Reading
from drivers.codecs import nmea
from drivers.serial.reader import Events
from drivers.serial.streaming import LATEST, StreamingSensorDriver

if TYPE_CHECKING:
    from drivers.serial.config import NmeaGpsConfig

POSITION_METRICS = (("latitude", "deg"), ("longitude", "deg"), ("altitude", "m"), ("hdop", ""))


class NmeaGpsDriver(StreamingSensorDriver):
    config_model = "drivers.serial.config:NmeaGpsConfig"
    aggregate: ClassVar[str] = LATEST
    metrics: ClassVar[tuple[tuple[str, str], ...]] = (*POSITION_METRICS, ("satellites", ""))

    def __init__(self, config: NmeaGpsConfig, bus: Any, ctx: Any) -> None:
        super().__init__(config, bus, ctx)
        self.config: NmeaGpsConfig = config
        self.time_state: dict[str, Any] = {"mode": config.time_source, "synced": False, "last_action": "none", "offset": None}
        self._clock_marked = False
        self._set_failed = False

    def scan_stream(self, buf: bytes) -> tuple[Events, bytes]:
        return nmea.scan(buf)

    def frame_values(self, frame: dict[str, Any]) -> dict[str, Any] | None:
        kind = frame.get("type")
        if kind == "GGA":
            fix = frame["valid"]
            return {
                "latitude": frame["latitude"] if fix else None,
                "longitude": frame["longitude"] if fix else None,
                "altitude": frame["altitude"] if fix else None,
                "hdop": frame["hdop"] if fix else None,
                "satellites": frame["satellites"],
                "fix_quality": frame["quality"],
            }
        if kind == "RMC":
            if frame["valid"] and frame["epoch"] is not None and self.config.time_source != "off":
                self._check_time(frame["epoch"])
            fix = frame["valid"]
            return {"latitude": frame["latitude"] if fix else None, "longitude": frame["longitude"] if fix else None}
        return None  # GSV, GSA, VTG...: nothing we publish

    def make_readings(self, values: dict[str, Any]) -> list[Reading]:
        r = self.ctx.reading
        out = []
        fix = values.get("latitude") is not None and values.get("longitude") is not None
        for metric, unit in POSITION_METRICS:
            value = values.get(metric)
            if fix and value is not None:
                out.append(r(metric, round(value, 7) if unit == "deg" else value, unit))
            elif metric in values or metric in ("latitude", "longitude"):
                out.append(
                    r(metric, None, unit, status=ERROR, detail=f"no GPS fix (quality {values.get('fix_quality', 0)}): check the antenna's view of the sky")
                )
        if values.get("satellites") is not None:
            out.append(r("satellites", values["satellites"], ""))
        return out

    # -- time source ------------------------------------------------------------

    def _check_time(self, gps_epoch: float) -> None:
        offset = time.time() - gps_epoch
        self.time_state["offset"] = round(offset, 3)
        if abs(offset) <= self.config.time_tolerance:
            if not self._clock_marked:
                self._clock_marked = True
                self.time_state.update(synced=True, last_action=f"validated: system clock within {offset:+.3f} s of GPS")
                self.ctx.log.info("%s: system clock agrees with GPS (%+.3f s); marking it synchronised", self.config.name, offset)
                self.ctx.mark_clock_synced()
            return
        if self.config.time_source != "set":
            if self.time_state["last_action"].startswith("validated") or self.time_state["last_action"] == "none":
                self.ctx.log.warning(
                    "%s: system clock differs from GPS by %+.1f s; not marking it synchronised (time_source = 'set' would correct it)",
                    self.config.name,
                    offset,
                )
            self.time_state["last_action"] = f"disagrees with GPS by {offset:+.1f} s; left alone (time_source = validate)"
            return
        if self._set_failed:
            return
        try:
            time.clock_settime(time.CLOCK_REALTIME, gps_epoch + (time.monotonic() - (self.reader.last_data_mono or time.monotonic())))
        except OSError as exc:
            self._set_failed = True
            self.time_state["last_action"] = f"could not set the clock ({exc}); needs CAP_SYS_TIME"
            self.ctx.log.error(
                "%s: cannot set the system clock from GPS (%s): run the agent with CAP_SYS_TIME (AmbientCapabilities=CAP_SYS_TIME in the unit) or use time_source = 'validate'",
                self.config.name,
                exc,
            )
            return
        self._clock_marked = True
        self.time_state.update(synced=True, last_action=f"set system clock from GPS (was {offset:+.1f} s off)")
        self.ctx.log.warning("%s: set the system clock from GPS; it was %+.1f s off", self.config.name, offset)
        self.ctx.mark_clock_synced()

    def status(self) -> dict[str, Any]:
        return {**super().status(), "time": dict(self.time_state)}
