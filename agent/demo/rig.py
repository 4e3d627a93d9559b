"""Start emulators at the endpoints a gateway config names.

The rig reads the same config the agent runs (config/demo.toml), so the demo
config is the single source of the demo's wiring: a Modbus TCP bus becomes a
TCP emulator on that port, a Modbus RTU bus a pty whose slave is linked at the
configured path, a serial sensor an emulator writing real frames into a pty,
a camera whose source file is missing a rendered street video.
"""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger("edge_agent.demo")


def _relink(target: str, link: str) -> None:
    os.makedirs(os.path.dirname(link) or ".", exist_ok=True)
    if os.path.islink(link) or os.path.exists(link):
        os.unlink(link)
    os.symlink(target, link)


class DemoRig:
    def __init__(self, config: Any) -> None:
        self.config = config
        self.running: list[Any] = []
        self.links: list[str] = []
        self.summary: list[str] = []

    async def start(self) -> None:
        await self._start_modbus()
        await self._start_serial()
        self._prepare_cameras()

    async def _start_modbus(self) -> None:
        from hil_tests.emulators.modbus_devices import profile_device
        from hil_tests.emulators.modbus_servers import PtyRtuEmulator, TcpEmulator

        for bus in self.config.buses:
            if not bus.type.startswith("modbus"):
                continue
            devices = [d for d in self.config.devices if getattr(d, "bus", None) == bus.name and d.driver == "modbus" and d.profile]
            emulated = [profile_device(d.profile, d.unit_id, seed=i + 1) for i, d in enumerate(devices)]
            if not emulated:
                continue
            if bus.type == "modbus_tcp":
                emu: Any = TcpEmulator(emulated, port=bus.port)
                await emu.start()
                where = f"tcp {bus.host}:{bus.port}"
            elif bus.type == "modbus_rtu":
                emu = PtyRtuEmulator(emulated, baudrate=bus.baudrate)
                await emu.start()
                _relink(emu.path, bus.port)
                self.links.append(bus.port)
                where = f"rtu {bus.port} -> {emu.path}"
            else:
                continue
            self.running.append(emu)
            names = ", ".join(f"{d.name} ({d.profile}, unit {d.unit_id})" for d in devices)
            self.summary.append(f"bus {bus.name} [{where}]: {names}")

    async def _start_serial(self) -> None:
        serial_buses = {b.name: b for b in self.config.buses if b.type == "serial"}
        if not serial_buses:
            return
        from hil_tests.emulators import serial_sensors

        for dev in self.config.devices:
            bus = serial_buses.get(getattr(dev, "bus", "") or "")
            if bus is None:
                continue
            emu = serial_sensors.emulator_for(dev.driver, link=bus.port, config=dev)
            await _maybe_await(emu.start())
            self.running.append(emu)
            self.summary.append(f"serial {bus.port}: {dev.name} ({dev.driver})")

    def _prepare_cameras(self) -> None:
        for cam in self.config.cameras:
            if "://" in cam.source or cam.source.startswith("/dev/") or os.path.exists(cam.source):
                self.summary.append(f"camera {cam.name}: {cam.source}")
                continue
            from hil_tests.emulators import scenes

            print(f"rendering a street video for camera {cam.name} into {cam.source} (once) ...", flush=True)
            os.makedirs(os.path.dirname(cam.source) or ".", exist_ok=True)
            scenes.render_demo_street(cam.source)
            self.summary.append(f"camera {cam.name}: rendered street video {cam.source}")

    async def stop(self) -> None:
        for emu in reversed(self.running):
            try:
                await _maybe_await(emu.stop())
            except Exception as exc:  # noqa: BLE001 - stop the rest regardless
                log.warning("stopping %s: %s", type(emu).__name__, exc)
        for link in self.links:
            if os.path.islink(link):
                os.unlink(link)


async def _maybe_await(value: Any) -> Any:
    if hasattr(value, "__await__"):
        return await value
    return value
