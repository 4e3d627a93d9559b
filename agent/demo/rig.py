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
        from hil_tests.emulators.serial_sensors import EMULATORS as emulators

        for i, dev in enumerate(self.config.devices):
            bus = serial_buses.get(getattr(dev, "bus", "") or "")
            if bus is None or dev.driver not in emulators:
                continue
            options: dict[str, Any] = {"seed": i + 1}
            if dev.driver == "ultrasonic_bin":
                # a bin about half full, filling slowly
                options.update(unit=dev.unit, distance_mm=dev.sensor_offset + dev.bin_depth * 0.55)
            os.makedirs(os.path.dirname(bus.port) or ".", exist_ok=True)
            emu = emulators[dev.driver](bus.port, **options)
            if dev.driver == "ultrasonic_bin":
                emu.fill_rate_mm = 0.05
            emu.noise_probability = 0.05  # a real line carries some garbage; the reader resyncs
            emu.start()
            self.running.append(emu)
            self.summary.append(f"serial {bus.port}: {dev.name} ({dev.driver}, with line noise)")

    def _prepare_cameras(self) -> None:
        for cam in self.config.cameras:
            if "://" in cam.source or cam.source.startswith("/dev/") or os.path.exists(cam.source):
                self.summary.append(f"camera {cam.name}: {cam.source}")
                continue
            from hil_tests.emulators.scenes import StreetScene

            print(f"demo: rendering a 60 s street video for camera {cam.name} into {cam.source} (first run only) ...", flush=True)
            os.makedirs(os.path.dirname(cam.source) or ".", exist_ok=True)
            scene = StreetScene.random(seed=7, duration_s=60, fps=10, size=(640, 360), per_lane_per_min=6)
            tmp = cam.source + ".part.avi"
            scene.write_video(tmp)
            os.replace(tmp, cam.source)  # an interrupted render is never mistaken for a finished one
            self.summary.append(f"camera {cam.name}: rendered street video {cam.source} (looping)")

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
