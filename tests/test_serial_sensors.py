"""Serial sensor drivers without a port: config checks, the reader's codec path, readings."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from agent.config.errors import ConfigError
from agent.config.loader import load_config_text
from agent.readings import ERROR, OK, OUT_OF_RANGE, Reading
from agent.runtime.clock import Clock
from drivers.base import DriverContext
from drivers.codecs import nmea, sds011
from drivers.config import FailurePolicy
from drivers.serial.bus import SerialBus
from drivers.serial.config import NmeaGpsConfig, SerialBusConfig, UltrasonicBinConfig
from drivers.serial.nmea_gps import NmeaGpsDriver
from drivers.serial.reader import PortReader
from drivers.serial.ultrasonic_bin import UltrasonicBinDriver

BASE = """
[gateway]
id = "gw-1"
site = "north"

[[buses]]
name = "usb-bin"
type = "serial"
port = "/dev/serial/by-id/usb-FTDI-if00-port0"
"""


def make(driver_cls: type, config_cls: type, **config: Any) -> tuple[Any, list[Reading], list[int]]:
    readings: list[Reading] = []
    marks: list[int] = []
    bus = SerialBus(SerialBusConfig(name="p", type="serial", port="/nonexistent/tty"), logging.getLogger("t"))
    cfg = config_cls(name="dev", driver="x", bus="p", report_interval=0, **config)
    ctx = DriverContext("dev", stamp=Clock("assume").reading, emit=readings.extend, log=logging.getLogger("t"), mark_clock_synced=lambda: marks.append(1))
    return driver_cls(cfg, bus, ctx), readings, marks


def test_bin_config_from_toml() -> None:
    cfg = load_config_text(BASE + '[[devices]]\nname = "bin-1"\ndriver = "ultrasonic_bin"\nbus = "usb-bin"\nbin_depth = 1200\nsensor_offset = 150\n')
    dev = cfg.devices[0]
    assert (dev.bin_depth, dev.sensor_offset, dev.unit, dev.report_interval) == (1200, 150, "mm", 60)


def test_bin_deeper_than_sensor_range_is_rejected_with_a_hint() -> None:
    with pytest.raises(ConfigError) as err:
        load_config_text(BASE + '[[devices]]\nname = "bin-1"\ndriver = "ultrasonic_bin"\nbus = "usb-bin"\nbin_depth = 4900\nsensor_offset = 150\n')
    text = err.value.render()
    assert "max_range" in text and "mount the sensor lower" in text


def test_bad_serial_settings_are_rejected() -> None:
    with pytest.raises(ConfigError) as err:
        load_config_text(BASE.replace('port = "/dev', 'parity = "maybe"\nport = "/dev'))
    assert "parity" in err.value.render()


def test_reader_keeps_partial_frames_across_chunks_and_counts() -> None:
    got: list = []
    reader = PortReader("t", lambda: None, sds011.scan, got.extend, FailurePolicy(), logging.getLogger("t"), recorder_size=4)  # type: ignore[arg-type, return-value]
    frame = sds011.encode_frame(12.3, 45.6)
    bad = frame[:8] + b"\x00" + frame[9:]
    stream = b"\x01\x02" + frame + bad + frame
    for k in range(0, len(stream), 3):
        reader.feed(stream[k : k + 3])
    assert [e[0] for e in got] == ["garbage", "frame", "checksum", "frame"]
    assert reader.stats()["frames"] == 2
    assert reader.stats()["errors"] == {"garbage": 1, "checksum": 1}
    assert len(reader.recorder.snapshot()) == 4, "the recorder keeps only the last chunks"


def test_reader_reports_a_missing_port_and_keeps_retrying(tmp_path: Path) -> None:
    async def scenario() -> None:
        bus = SerialBus(SerialBusConfig(name="p", type="serial", port=str(tmp_path / "ttyUSB9")), logging.getLogger("t"))
        policy = FailurePolicy(backoff_initial=0.01, backoff_max=0.02)
        reader = PortReader("t", bus.open_port, sds011.scan, lambda e: None, policy, logging.getLogger("t"), port_health=bus.health)
        task = asyncio.create_task(reader.run())
        deadline = time.monotonic() + 10
        while bus.health.error_counts.get("offline", 0) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert reader.state == "offline"
        assert "ttyUSB9" in reader.last_error
        assert bus.health.error_counts["offline"] >= 3, "it keeps retrying"
        assert bus.status()["online"] is False

    asyncio.run(scenario())


def test_gps_validate_marks_clock_only_with_valid_fix_and_agreeing_time() -> None:
    drv, readings, marks = make(NmeaGpsDriver, NmeaGpsConfig, time_source="validate")
    now = time.gmtime()
    hms = time.strftime("%H%M%S.00", now)
    date = time.strftime("%d%m%y", now)
    void = nmea.build_sentence(f"GPRMC,{hms},V,,,,,,,{date},,,N")
    drv.handle_events(nmea.scan(void)[0])
    assert marks == [], "no fix: the time is not trusted"
    fix = nmea.build_sentence(f"GPRMC,{hms},A,4807.038,N,01131.000,E,0.0,0.0,{date},,,A")
    drv.handle_events(nmea.scan(fix + fix)[0])
    assert marks == [1], "marked once"
    assert drv.status()["time"]["synced"] is True
    assert [r.metric for r in readings if r.status == ERROR] == ["latitude", "longitude"]
    assert [round(r.value, 4) for r in readings if r.metric == "latitude" and r.status == OK] == [48.1173, 48.1173]


def test_gps_off_never_marks_the_clock() -> None:
    drv, _, marks = make(NmeaGpsDriver, NmeaGpsConfig)
    now = time.gmtime()
    fix = nmea.build_sentence(f"GPRMC,{time.strftime('%H%M%S', now)},A,4807.038,N,01131.000,E,0.0,0.0,{time.strftime('%d%m%y', now)},,,A")
    drv.handle_events(nmea.scan(fix)[0])
    assert marks == []


def test_bin_below_bottom_is_clamped_and_flagged() -> None:
    drv, readings, _ = make(UltrasonicBinDriver, UltrasonicBinConfig, bin_depth=1000, sensor_offset=200)
    drv.handle_events([("frame", {"type": "range", "range": 1500, "digits": 4})])
    fill = [r for r in readings if r.metric == "fill_level"][0]
    assert fill.status == OUT_OF_RANGE and fill.value == 0.0 and "below the bottom" in fill.detail
    distance = [r for r in readings if r.metric == "distance"][0]
    assert distance.status == OK and distance.value == 1500.0


_SET_CLOCK_SCRIPT = r"""
import json, logging, os, sys, time
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, os.path.join(sys.argv[1], "tests"))
from drivers.codecs import nmea
from drivers.serial.nmea_gps import NmeaGpsDriver
from drivers.serial.config import NmeaGpsConfig
from test_serial_sensors import make
drv, readings, marks = make(NmeaGpsDriver, NmeaGpsConfig, time_source="set")
off = time.gmtime(time.time() - 3600)
rmc = nmea.build_sentence("GPRMC,%s,A,4807.038,N,01131.000,E,0.0,0.0,%s,,,A" % (time.strftime("%H%M%S", off), time.strftime("%d%m%y", off)))
if os.geteuid() == 0:
    # Drop root (after importing and building: the interpreter may live under /root) so
    # setting the clock fails as it does for the agent's own user; this test
    # must never change the host's clock.
    os.setgid(65534)
    os.setuid(65534)
drv.handle_events(nmea.scan(rmc + rmc)[0])
print(json.dumps({"time": drv.status()["time"], "marks": len(marks)}))
"""


def test_gps_set_without_privilege_reports_and_does_not_mark(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    script = tmp_path / "set_clock.py"
    script.write_text(_SET_CLOCK_SCRIPT)
    os_env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, str(script), str(root)], capture_output=True, text=True, timeout=120, env=os_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["marks"] == 0, "a clock that could not be set is not marked synchronised"
    assert result["time"]["synced"] is False
    assert "CAP_SYS_TIME" in result["time"]["last_action"]
    assert 3590 < result["time"]["offset"] < 3610
    assert "cannot set the system clock" in proc.stderr


def test_gps_set_mode_with_a_right_clock_only_validates() -> None:
    drv, _, marks = make(NmeaGpsDriver, NmeaGpsConfig, time_source="set")
    now = time.gmtime()
    fix = nmea.build_sentence(f"GPRMC,{time.strftime('%H%M%S', now)},A,4807.038,N,01131.000,E,0.0,0.0,{time.strftime('%d%m%y', now)},,,A")
    drv.handle_events(nmea.scan(fix)[0])
    assert marks == [1]
    assert drv.status()["time"]["last_action"].startswith("validated")
