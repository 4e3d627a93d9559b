"""Serial sensor drivers end to end against emulators writing real frames into ptys.

What a user would notice: the values the sensor sent come out as readings,
noise and cut frames do not lose the frames after them, broken frames show
up as counted errors in the device status, a silent or unplugged sensor is
reported, and re-plugging the adapter brings readings back without a restart.
Every wait is bounded and waits for a condition, never for a fixed time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from agent.readings import BAD_FRAME, ERROR, OFFLINE, OK, OUT_OF_RANGE, TIMEOUT, Reading
from agent.runtime.clock import Clock
from drivers.base import DriverContext
from drivers.serial.bus import SerialBus
from drivers.serial.config import NmeaGpsConfig, Pms5003Config, Sds011Config, SerialBusConfig, UltrasonicBinConfig
from drivers.serial.nmea_gps import NmeaGpsDriver
from drivers.serial.particulate import Pms5003Driver, Sds011Driver
from drivers.serial.ultrasonic_bin import UltrasonicBinDriver
from hil_tests.emulators.serial_sensors import MaxbotixEmulator, NmeaGpsEmulator, Pms5003Emulator, Sds011Emulator, SerialSensorEmulator

WAIT = 20.0  # upper bound of every wait; conditions usually hold within a second
FAST_RETRY = {"backoff_initial": 0.05, "backoff_max": 0.3, "backoff_jitter": 0.0}


class Harness:
    """One driver on one emulator, collecting what ctx.emit receives."""

    def __init__(self, driver_cls: type, config_cls: type, emulator: SerialSensorEmulator, **config: Any) -> None:
        self.emulator = emulator
        self.readings: list[Reading] = []
        self.clock_marks = 0
        bus = SerialBus(SerialBusConfig(name="port", type="serial", port=emulator.port), logging.getLogger("test.bus"))
        cfg = config_cls(name="dev", driver="x", bus="port", **{"report_interval": 0, "stale_after": 1.0, "failure": FAST_RETRY, **config})
        ctx = DriverContext("dev", stamp=Clock("assume").reading, emit=self.readings.extend, log=logging.getLogger("test.dev"), mark_clock_synced=self._mark)
        self.driver = driver_cls(cfg, bus, ctx)
        self.task: asyncio.Task[None] | None = None

    def _mark(self) -> None:
        self.clock_marks += 1

    async def __aenter__(self) -> Harness:
        self.emulator.start()
        self.task = asyncio.create_task(self.driver.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass
        await self.driver.close()
        self.emulator.stop()

    def ok(self, metric: str) -> list[Any]:
        return [r.value for r in self.readings if r.metric == metric and r.status == OK]

    def with_status(self, status: str) -> list[Reading]:
        return [r for r in self.readings if r.status == status]

    async def inject_and_resync(self, *, garbage: int, length: int, checksum: int, metric: str = "pm2_5") -> dict[str, int]:
        """Send noise, cut frames and bad checksums; wait until each is counted and
        good frames flow again; return the driver's error counts."""
        self.emulator.noise_next(garbage)
        self.emulator.partial_next(length)
        self.emulator.corrupt_next(checksum)
        await self.until("the faults", lambda: self.seen(checksum=checksum, length=length, garbage=garbage))
        n = len(self.ok(metric))
        await self.until("5 more frames", lambda: len(self.ok(metric)) >= n + 5)
        return self.driver.status()["error_counts"]

    def seen(self, **at_least: int) -> bool:
        counts = self.driver.status()["error_counts"]
        return all(counts.get(kind, 0) >= n for kind, n in at_least.items())

    async def until(self, what: str, cond: Callable[[], bool]) -> None:
        deadline = time.monotonic() + WAIT
        while not cond():
            assert self.task is not None
            if self.task.done():
                self.task.result()  # raises what killed the driver
                raise AssertionError(f"driver stopped while waiting for {what}")
            if time.monotonic() > deadline:
                raise AssertionError(f"gave up after {WAIT:.0f} s waiting for {what}; status: {self.driver.status()}")
            await asyncio.sleep(0.02)


def is_run_of(decoded: list[float], sent: list[float]) -> bool:
    """decoded is a contiguous run of sent (frames before the port opened are flushed by the open)."""
    n = len(decoded)
    return n > 0 and any(sent[i : i + n] == decoded for i in range(len(sent) - n + 1))


def test_sds011_values_faults_and_counts() -> None:
    async def scenario() -> None:
        async with Harness(Sds011Driver, Sds011Config, Sds011Emulator(interval=0.03)) as h:
            emu = h.emulator
            await h.until("5 frames", lambda: len(h.ok("pm2_5")) >= 5)
            counts = await h.inject_and_resync(garbage=2, length=2, checksum=3)
            assert counts.get("checksum") == 3
            assert counts.get("length") == 2  # the two cut frames; the whole frame after each was decoded
            assert counts.get("garbage") == 2
            sent = [v["pm2_5"] for v in emu.sent]
            got = h.ok("pm2_5")
            assert is_run_of(got, sent), (got, sent)
            assert is_run_of(h.ok("pm10"), [v["pm10"] for v in emu.sent])
            assert all(r.unit == "ug/m3" for r in h.readings)
            assert h.driver.status()["serial"]["frames"] == len(got)
            assert h.driver.flight_recorder(), "the flight recorder keeps the last raw chunks"

    asyncio.run(scenario())


def test_pms5003_averages_over_report_interval_and_publishes_counts() -> None:
    async def scenario() -> None:
        emu = Pms5003Emulator(interval=0.02)
        async with Harness(Pms5003Driver, Pms5003Config, emu, report_interval=3600, particle_counts=True) as h:
            await h.until("12 frames", lambda: h.driver.status()["serial"]["frames"] >= 12)
            frames = h.driver.status()["serial"]["frames"]
            h.driver.flush_window()
            pm25 = h.ok("pm2_5")
            assert len(pm25) == 1, "one averaged reading per window, not one per frame"
            sent = [v["pm2_5"] for v in emu.sent]
            # the window holds `frames` consecutive frames sent (those before the port opened were flushed)
            means = [round(sum(sent[i : i + frames]) / frames, 1) for i in range(len(sent) - frames + 1)]
            assert any(math.isclose(pm25[0], m, abs_tol=0.051) for m in means), (pm25, means)
            assert h.ok("count_0_3") and [r.unit for r in h.readings if r.metric == "count_0_3"] == ["/dL"]
            assert {r.metric for r in h.readings} == {"pm1_0", "pm2_5", "pm10", "count_0_3", "count_0_5", "count_1_0", "count_2_5", "count_5_0", "count_10"}

    asyncio.run(scenario())


def test_pms5003_resyncs_after_noise_and_counts_bad_checksums() -> None:
    async def scenario() -> None:
        emu = Pms5003Emulator(interval=0.02)
        async with Harness(Pms5003Driver, Pms5003Config, emu) as h:
            await h.until("3 frames", lambda: len(h.ok("pm2_5")) >= 3)
            counts = await h.inject_and_resync(garbage=3, length=1, checksum=4)
            assert counts.get("checksum") == 4
            assert counts.get("garbage") == 3
            assert counts.get("length") == 1
            assert is_run_of(h.ok("pm10"), [float(v["pm10"]) for v in emu.sent])

    asyncio.run(scenario())


def test_only_broken_frames_reports_bad_frame_status() -> None:
    async def scenario() -> None:
        emu = Sds011Emulator(interval=0.03)
        async with Harness(Sds011Driver, Sds011Config, emu, stale_after=0.5) as h:
            await h.until("first frame", lambda: len(h.ok("pm2_5")) >= 1)
            emu.corrupt_probability = 1.0
            await h.until("bad_frame status", lambda: bool(h.with_status(BAD_FRAME)))
            bad = h.with_status(BAD_FRAME)
            assert {r.metric for r in bad} == {"pm2_5", "pm10"}
            assert "broken frames" in bad[0].detail
            assert h.driver.status()["online"] is False
            emu.corrupt_probability = 0.0
            n = len(h.ok("pm2_5"))
            await h.until("recovery", lambda: len(h.ok("pm2_5")) > n)
            assert h.driver.status()["online"] is True

    asyncio.run(scenario())


def test_silent_sensor_reports_timeout_once() -> None:
    async def scenario() -> None:
        emu = Sds011Emulator(interval=0.03)
        async with Harness(Sds011Driver, Sds011Config, emu, stale_after=0.3) as h:
            await h.until("first frame", lambda: len(h.ok("pm2_5")) >= 1)
            emu.paused = True
            await h.until("timeout status", lambda: bool(h.with_status(TIMEOUT)))
            polls = h.driver.status()["polls"]
            checks = h.driver.checks
            await h.until("three more housekeeping ticks", lambda: h.driver.checks >= checks + 3)
            assert len(h.with_status(TIMEOUT)) == 2, "one timeout reading per metric per outage, not one per tick"
            assert h.driver.status()["polls"] == polls
            emu.paused = False
            n = len(h.ok("pm2_5"))
            await h.until("frames again", lambda: len(h.ok("pm2_5")) > n)

    asyncio.run(scenario())


def test_unplug_and_replug_recovers_without_restart() -> None:
    async def scenario() -> None:
        emu = Sds011Emulator(interval=0.03)
        async with Harness(Sds011Driver, Sds011Config, emu, stale_after=0.3) as h:
            await h.until("frames", lambda: len(h.ok("pm2_5")) >= 3)
            emu.unplug()
            await h.until("offline status", lambda: bool(h.with_status(OFFLINE)))
            assert h.driver.reader.state == "offline"
            assert h.driver.status()["online"] is False
            before = len(h.ok("pm2_5"))
            emu.replug()
            await h.until("frames after replug", lambda: len(h.ok("pm2_5")) >= before + 3)
            assert h.driver.reader.opens == 2
            assert h.task is not None and not h.task.done(), "the same driver task recovered"
            assert h.driver.status()["online"] is True
            # the values after the replug are the ones sent after it
            assert is_run_of(h.ok("pm2_5")[before:], [v["pm2_5"] for v in emu.sent])

    asyncio.run(scenario())


def test_gps_position_and_time_validation() -> None:
    async def scenario() -> None:
        emu = NmeaGpsEmulator(interval=0.05, lat=-33.8568, lon=151.2153)
        async with Harness(NmeaGpsDriver, NmeaGpsConfig, emu, time_source="validate") as h:
            await h.until("positions", lambda: len(h.ok("altitude")) >= 3)
            sent = [v for v in emu.sent if v["latitude"] is not None]
            lat = h.ok("latitude")
            assert all(any(abs(x - s["latitude"]) < 1e-6 for s in sent) for x in lat)
            assert all(x < 0 for x in lat) and all(x > 150 for x in h.ok("longitude"))
            assert set(h.ok("satellites")) <= {s["satellites"] for s in emu.sent}
            assert [r.unit for r in h.readings if r.metric == "latitude"][0] == "deg"
            assert h.clock_marks == 1, "the clock agrees with GPS: marked synchronised once"
            assert h.driver.status()["time"]["synced"] is True
            # losing the fix: position readings say so
            emu.fix = False
            await h.until("no-fix readings", lambda: any(r.metric == "latitude" and r.status == ERROR for r in h.readings))
            assert "no GPS fix" in [r for r in h.readings if r.status == ERROR][0].detail

    asyncio.run(scenario())


def test_gps_wrong_clock_is_not_marked_synced() -> None:
    async def scenario() -> None:
        emu = NmeaGpsEmulator(interval=0.05)
        emu.clock_offset = -3600.0
        async with Harness(NmeaGpsDriver, NmeaGpsConfig, emu, time_source="validate") as h:
            await h.until("positions", lambda: len(h.ok("latitude")) >= 3)
            assert h.clock_marks == 0
            state = h.driver.status()["time"]
            assert state["synced"] is False and "disagrees" in state["last_action"]
            assert math.isclose(state["offset"], 3600.0, abs_tol=5)

    asyncio.run(scenario())


def test_gps_not_a_time_source_by_default() -> None:
    async def scenario() -> None:
        async with Harness(NmeaGpsDriver, NmeaGpsConfig, NmeaGpsEmulator(interval=0.05)) as h:
            emu = h.emulator
            await h.until("positions", lambda: len(h.ok("latitude")) >= 3)
            emu.corrupt_next(2)
            await h.until("checksum errors", lambda: h.seen(checksum=2))
            n = len(h.ok("latitude"))
            await h.until("more positions", lambda: len(h.ok("latitude")) >= n + 3)
            assert h.driver.status()["error_counts"]["checksum"] == 2
            assert h.clock_marks == 0
            assert h.driver.status()["time"]["last_action"] == "none"

    asyncio.run(scenario())


def test_ultrasonic_bin_fill_level_mm_model() -> None:
    async def scenario() -> None:
        emu = MaxbotixEmulator(interval=0.02, distance_mm=700)
        async with Harness(UltrasonicBinDriver, UltrasonicBinConfig, emu, bin_depth=1000, sensor_offset=400) as h:
            await h.until("fill readings", lambda: len(h.ok("fill_level")) >= 3)
            assert h.ok("fill_level")[0] == 70.0
            assert h.ok("distance")[0] == 700.0
            emu.corrupt_next(2)
            emu.partial_next(1)
            emu.distance_mm = 950
            await h.until("new level", lambda: 45.0 in h.ok("fill_level"))
            counts = h.driver.status()["error_counts"]
            assert counts.get("format") == 2 and counts.get("length") == 1
            # a bag above the rim: clamped and flagged, not silently 100 %
            emu.distance_mm = 350
            await h.until("out of range", lambda: bool(h.with_status(OUT_OF_RANGE)))
            r = h.with_status(OUT_OF_RANGE)[0]
            assert r.metric == "fill_level" and r.value == 100.0 and "above the rim" in r.detail
            # no echo at all: the model's no-target value
            emu.distance_mm = 5000
            await h.until("no echo", lambda: any("no echo" in r.detail for r in h.readings))
            r = [r for r in h.readings if "no echo" in r.detail][0]
            assert r.status == OUT_OF_RANGE and r.value is None


def test_ultrasonic_inch_model_and_median_window() -> None:
    async def scenario() -> None:
        emu = MaxbotixEmulator(interval=0.02, unit="in", distance_mm=30 * 25.4)
        async with Harness(UltrasonicBinDriver, UltrasonicBinConfig, emu, unit="in", bin_depth=1000, sensor_offset=0, report_interval=3600) as h:
            await h.until("frames", lambda: h.driver.status()["serial"]["frames"] >= 5)
            emu.send_raw(b"R999\r")  # one wild echo (over 25 m) must not move the median
            await h.until("a few more frames", lambda: h.driver.status()["serial"]["frames"] >= 12)
            h.driver.flush_window()
            assert h.ok("distance") == [762.0]
            assert h.ok("fill_level") == [round(100 * (1000 - 762) / 1000, 1)]

    asyncio.run(scenario())


def test_status_is_json_and_shows_the_line() -> None:
    async def scenario() -> None:
        emu = Sds011Emulator(interval=0.03)
        async with Harness(Sds011Driver, Sds011Config, emu) as h:
            emu.noise_next(1)
            await h.until("frames and the noise", lambda: len(h.ok("pm2_5")) >= 3 and h.seen(garbage=1))
            status = json.loads(json.dumps(h.driver.status()))
            assert status["serial"]["state"] == "open" and status["serial"]["frames"] >= 3
            assert any("aa c0" in entry["hex"] for entry in status["flight_recorder"]), "raw frames are in the flight recorder"
            bus_status = json.loads(json.dumps(h.driver.bus.status()))
            assert bus_status["reader"]["state"] == "open" and bus_status["settings"] == "9600 8N1"

    asyncio.run(scenario())
