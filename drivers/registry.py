"""Where the runtime and the config schema find drivers and bus types.

Entries are import strings so a gateway without cameras or serial adapters never
imports what it does not use; each driver module adds its own line here. A
driver or bus class names its config model by import string too
(`config_model`): only the config validator imports the models, never the
running agent.
"""

from __future__ import annotations

import importlib
from typing import Any

# driver name -> "module:Class" of a drivers.base.Driver subclass
DRIVERS: dict[str, str] = {
    "system": "drivers.system.health:SystemHealthDriver",
    "modbus": "drivers.modbus.driver:ModbusDriver",
    "sds011": "drivers.serial.particulate:Sds011Driver",
    "pms5003": "drivers.serial.particulate:Pms5003Driver",
    "nmea_gps": "drivers.serial.nmea_gps:NmeaGpsDriver",
    "ultrasonic_bin": "drivers.serial.ultrasonic_bin:UltrasonicBinDriver",
}

# bus type -> "module:Class" of a drivers.base.Bus subclass
BUSES: dict[str, str] = {
    "modbus_tcp": "drivers.modbus.bus:ModbusTcpBus",
    "modbus_rtu": "drivers.modbus.bus:ModbusRtuBus",
    "modbus_rtu_over_tcp": "drivers.modbus.bus:ModbusRtuOverTcpBus",
    "serial": "drivers.serial.bus:SerialBus",
}


def _load(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def driver_class(name: str) -> Any:
    return _load(DRIVERS[name])


def bus_class(type_name: str) -> Any:
    return _load(BUSES[type_name])


def all_driver_classes() -> dict[str, Any]:
    return {name: _load(ref) for name, ref in DRIVERS.items()}


def all_bus_classes() -> dict[str, Any]:
    return {name: _load(ref) for name, ref in BUSES.items()}


def all_driver_classes_config() -> dict[str, Any]:
    """driver name -> its DeviceConfig model, for the config schema."""
    return {name: _load(cls.config_model) for name, cls in all_driver_classes().items()}


def all_bus_classes_config() -> dict[str, Any]:
    """bus type -> its BusConfig model, for the config schema."""
    return {name: _load(cls.config_model) for name, cls in all_bus_classes().items()}
