"""Modbus device and bus config: profiles, overrides and the errors a user sees."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from agent.config.errors import ConfigError
from agent.config.loader import load_config
from drivers.modbus.bus import rtu_gap
from drivers.modbus.config import ModbusDeviceConfig, ModbusRtuBusConfig
from drivers.modbus.points import load_profile, profile_names
from drivers.modbus.recorder import FlightRecorder


def device(**kw: object) -> ModbusDeviceConfig:
    return ModbusDeviceConfig(name="meter-1", driver="modbus", bus="rs485", **kw)  # type: ignore[arg-type]


def error_of(**kw: object) -> str:
    with pytest.raises(ValidationError) as info:
        device(**kw)
    return str(info.value)


def test_every_shipped_profile_loads_with_canonical_units() -> None:
    assert {"eastron_sdm120", "eastron_sdm630", "xy_md02", "rs485_noise", "generic"} <= set(profile_names())
    canonical = {
        "voltage": "V",
        "current": "A",
        "active_power": "W",
        "reactive_power": "var",
        "apparent_power": "VA",
        "power_factor": "",
        "frequency": "Hz",
        "energy_import": "kWh",
        "energy_export": "kWh",
        "temperature": "Cel",
        "relative_humidity": "%",
        "sound_level": "dB(A)",
    }
    for name in profile_names():
        for p in device(profile=name).resolved_points:
            base = (
                p.name.split("_l")[0]
                if p.name.startswith(("voltage_l", "current_l", "active_power_l", "apparent_power_l", "reactive_power_l", "power_factor_l"))
                else p.name
            )
            if base in canonical:
                assert p.unit == canonical[base], (name, p.name)


def test_eastron_map_matches_the_manual() -> None:
    pts = {p.name: p for p in load_profile("eastron_sdm630").points}
    assert (pts["voltage_l1"].address, pts["current_l2"].address, pts["active_power"].address, pts["frequency"].address) == (0, 8, 52, 70)
    assert (pts["energy_import"].address, pts["energy_export"].address, pts["energy_total"].address) == (72, 74, 342)
    assert all(p.table == "input" and p.type == "float32" for p in pts.values())
    xy = {p.name: p for p in load_profile("xy_md02").points}
    assert (xy["temperature"].address, xy["temperature"].type, xy["temperature"].scale) == (1, "int16", 0.1)
    noise = load_profile("rs485_noise").points[0]
    assert (noise.table, noise.address, noise.scale, noise.unit) == ("holding", 0, 0.1, "dB(A)")


def test_profile_not_found_names_the_shipped_ones() -> None:
    msg = error_of(profile="sdm999")
    assert "profile 'sdm999' not found" in msg and "eastron_sdm630" in msg


def test_drop_add_and_override_profile_points() -> None:
    cfg = device(
        profile="eastron_sdm120",
        drop=["phase_angle", "reactive_energy_total"],
        override={"voltage": {"scale": 2.0}},
        points=[{"name": "serial_number", "table": "holding", "address": 64512, "type": "uint32"}],
    )
    pts = {p.name: p for p in cfg.resolved_points}
    assert "phase_angle" not in pts and "reactive_energy_total" not in pts
    assert pts["voltage"].scale == 2.0 and pts["voltage"].address == 0
    assert pts["serial_number"].word_order == "big"
    assert len(pts) == 13


def test_unknown_drop_or_override_is_an_error() -> None:
    assert "the profile has no point 'volts'" in error_of(profile="eastron_sdm120", drop=["volts"])
    assert "the profile has no point 'volts'" in error_of(profile="eastron_sdm120", override={"volts": {"scale": 1}})


def test_device_word_order_applies_to_profile_points() -> None:
    cfg = device(profile="eastron_sdm120", word_order="little")
    assert {p.word_order for p in cfg.resolved_points} == {"little"}


def test_overlapping_points_rejected_with_addresses() -> None:
    msg = error_of(points=[{"name": "a", "address": 10, "type": "float32"}, {"name": "b", "address": 11}])
    assert "points 'a' (holding 10..11) and 'b' (holding 11..11) overlap" in msg


def test_bits_of_one_register_do_not_overlap() -> None:
    device(points=[{"name": "a", "address": 3, "type": "bool", "bit": 0}, {"name": "b", "address": 3, "type": "bool", "bit": 1}])
    assert "overlap" in error_of(
        points=[{"name": "a", "address": 3, "type": "bool", "bit": 1}, {"name": "b", "address": 3, "type": "bits", "bit": 0, "width": 2}]
    )


def test_register_out_of_range() -> None:
    assert "less than or equal to 65535" in error_of(points=[{"name": "a", "address": 70000}])
    msg = error_of(points=[{"name": "a", "address": 65534, "type": "float64"}])
    assert "needs registers up to 65537, beyond 65535" in msg


def test_type_must_fit_its_registers() -> None:
    assert 'a coil holds one bit; set type = "bool"' in error_of(points=[{"name": "a", "table": "coil", "address": 1, "type": "uint16"}])
    assert 'length only applies to type = "string"' in error_of(points=[{"name": "a", "address": 1, "type": "int32", "length": 4}])
    assert "a string needs length" in error_of(points=[{"name": "a", "address": 1, "type": "string"}])
    assert "unknown type 'float16'" in error_of(points=[{"name": "a", "address": 1, "type": "float16"}])
    assert "do not fit one 16-bit register" in error_of(points=[{"name": "a", "address": 1, "type": "bits", "bit": 12, "width": 8}])


def test_point_in_forbidden_range_and_read_only_writes() -> None:
    assert "lies in the forbidden range 5..9" in error_of(points=[{"name": "a", "address": 6}], forbidden=[{"table": "holding", "start": 5, "end": 9}])
    assert "read-only" in error_of(points=[{"name": "a", "table": "input", "address": 6, "writable": True}])


def test_device_needs_points() -> None:
    assert "the device has no points" in error_of()


def test_gateway_config_locates_modbus_errors(tmp_path: Path) -> None:
    good = (
        '[gateway]\nid = "gw"\nsite = "x"\n'
        '[[buses]]\nname = "rs485"\ntype = "modbus_rtu"\nport = "/dev/ttyUSB0"\nbaudrate = 9600\n'
        '[[devices]]\nname = "meter-1"\ndriver = "modbus"\nbus = "rs485"\nunit_id = 3\nprofile = "eastron_sdm630"\n'
    )
    path = tmp_path / "gw.toml"
    path.write_text(good)
    cfg = load_config(path)
    dev = cfg.devices[0]
    assert dev.unit_id == 3 and len(dev.resolved_points) == 39
    path.write_text(good.replace('"eastron_sdm630"', '"eastron_sdm999"'))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = info.value.render()
    assert "eastron_sdm999" in text and "not found" in text


def test_rtu_gap_follows_the_spec() -> None:
    assert rtu_gap(9600, 0) == pytest.approx(3.5 * 11 / 9600)  # 4.01 ms
    assert rtu_gap(19200, 0) == pytest.approx(3.5 * 11 / 19200)
    assert rtu_gap(115200, 0) == 0.00175  # fixed above 19200 baud
    assert rtu_gap(115200, 0.01) == 0.01  # a slow device's minimum wins
    assert ModbusRtuBusConfig(name="b", type="modbus_rtu", port="/dev/ttyUSB0").baudrate == 9600


def test_flight_recorder_keeps_the_last_frames() -> None:
    rec = FlightRecorder(3)
    for i in range(5):
        rec.frame(i % 2 == 0, bytes((i,)))
    rec.note("timeout")
    snap = rec.snapshot()
    assert [e["data"] for e in snap] == ["03", "04", "timeout"]
    assert [e["dir"] for e in snap] == ["rx", "tx", "--"]
    assert rec.lines(1)[0].endswith("-- timeout")
