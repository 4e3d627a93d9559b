"""Wiring for Modbus end-to-end tests: an emulator, a real bus and drivers whose readings are collected."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from agent.readings import Reading
from agent.runtime.clock import Clock
from drivers.base import DriverContext
from drivers.modbus.bus import ModbusBus, ModbusRtuBus, ModbusRtuOverTcpBus, ModbusTcpBus
from drivers.modbus.config import ModbusDeviceConfig, ModbusRtuBusConfig, ModbusRtuOverTcpBusConfig, ModbusTcpBusConfig
from drivers.modbus.driver import ModbusDriver
from hil_tests.emulators.modbus_devices import EmulatedDevice
from hil_tests.emulators.modbus_servers import PtyRtuEmulator, RtuOverTcpEmulator, TcpEmulator

TRANSPORTS = ("tcp", "rtu", "rtu_over_tcp")


class ModbusHarness:
    """`async with ModbusHarness("rtu", devices) as h:` then `h.driver(unit_id, ...)`."""

    def __init__(self, transport: str, devices: list[EmulatedDevice], *, baudrate: int = 115200, timing: bool = False, **bus_options: Any) -> None:
        self.transport = transport
        self.devices = {d.unit_id: d for d in devices}
        self.emulator: Any
        if transport == "tcp":
            self.emulator = TcpEmulator(devices)
        elif transport == "rtu":
            self.emulator = PtyRtuEmulator(devices, baudrate=baudrate, timing=timing)
        else:
            self.emulator = RtuOverTcpEmulator(devices)
        self.baudrate = baudrate
        self.bus_options = {"reconnect_initial": 0.05, "reconnect_max": 0.2, **bus_options}
        self.bus: ModbusBus
        self.clock = Clock("assume")
        self.emitted: list[Reading] = []
        self.drivers: list[ModbusDriver] = []
        self.log = logging.getLogger("test.modbus")

    async def __aenter__(self) -> ModbusHarness:
        await self.emulator.start()
        opts = self.bus_options
        if self.transport == "tcp":
            self.bus = ModbusTcpBus(ModbusTcpBusConfig(name="bus", type="modbus_tcp", host="127.0.0.1", port=self.emulator.port, **opts), self.log)
        elif self.transport == "rtu":
            self.bus = ModbusRtuBus(ModbusRtuBusConfig(name="bus", type="modbus_rtu", port=self.emulator.path, baudrate=self.baudrate, **opts), self.log)
        else:
            self.bus = ModbusRtuOverTcpBus(
                ModbusRtuOverTcpBusConfig(name="bus", type="modbus_rtu_over_tcp", host="127.0.0.1", port=self.emulator.port, **opts), self.log
            )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.bus.close()
        await self.emulator.stop()

    def driver(self, unit_id: int, name: str | None = None, **cfg: Any) -> ModbusDriver:
        failure = {"timeout": 0.3, "retries": 0, "backoff_initial": 0.05, "backoff_max": 0.3, **cfg.pop("failure", {})}
        name = name or f"dev-{unit_id}"
        config = ModbusDeviceConfig(name=name, driver="modbus", bus="bus", unit_id=unit_id, failure=failure, **cfg)
        ctx = DriverContext(name, stamp=self.clock.reading, emit=self.emitted.extend, log=self.log.getChild(name))
        d = ModbusDriver(config, self.bus, ctx)
        self.drivers.append(d)
        return d

    def readings(self, device: str, metric: str) -> list[Reading]:
        return [r for r in self.emitted if r.device == device and r.metric == metric]


async def poll(driver: ModbusDriver) -> dict[str, Reading]:
    readings, _ = await driver.poll_points(list(driver.points.values()))
    return {r.metric: r for r in readings}


async def wait_for(predicate: Any, limit: float = 10.0, step: float = 0.02) -> bool:
    """Poll `predicate` until true or `limit` seconds passed (a hang guard, not a speed check)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while loop.time() < end:
        if predicate():
            return True
        await asyncio.sleep(step)
    return bool(predicate())
