"""The gateway's own health, polled like any device.

CPU temperature where the board exposes it (Raspberry Pi: thermal_zone0),
load, memory, disk free on the data partition, uptime and clock-sync state.
Everything is read from /proc and /sys; nothing here needs privileges.
"""

from __future__ import annotations

import asyncio
import glob
import os
from typing import TYPE_CHECKING, Any

from agent.readings import ERROR, OK, Reading
from drivers.base import PolledDriver

if TYPE_CHECKING:
    pass

_THERMAL_GLOB = "/sys/class/thermal/thermal_zone*/temp"


def _read_first(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        return None


def cpu_temperature() -> float | None:
    # thermal_zone0 is the SoC on a Raspberry Pi; elsewhere take the hottest
    # zone that reads, since VMs and x86 boards expose several or none.
    values = []
    for path in sorted(glob.glob(_THERMAL_GLOB)):
        text = _read_first(path)
        if text and text.lstrip("-").isdigit():
            values.append(int(text) / 1000.0)
    return max(values) if values else None


def memory() -> dict[str, int]:
    info: dict[str, int] = {}
    text = _read_first("/proc/meminfo") or ""
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            info[key] = int(parts[0]) * 1024
    return info


def uptime() -> float | None:
    text = _read_first("/proc/uptime")
    return float(text.split()[0]) if text else None


class SystemHealthDriver(PolledDriver):
    config_model = "drivers.system.config:SystemHealthConfig"

    def __init__(self, config: Any, bus: Any, ctx: Any) -> None:
        super().__init__(config, bus, ctx)
        self._disk_path = config.disk_path or ctx.data_dir
        self._clock_synced = getattr(ctx, "clock_synced", None)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "metrics": ["cpu_temperature", "load_1m", "memory_available", "memory_used_ratio", "disk_free", "disk_used_ratio", "uptime", "clock_synced"],
        }

    async def poll(self) -> list[Reading]:
        return await asyncio.to_thread(self._collect)

    def _collect(self) -> list[Reading]:
        r = self.ctx.reading
        out: list[Reading] = []
        temp = cpu_temperature()
        if temp is not None:
            out.append(r("cpu_temperature", round(temp, 1), "Cel"))
        try:
            out.append(r("load_1m", round(os.getloadavg()[0], 2), ""))
        except OSError:
            pass
        mem = memory()
        if "MemAvailable" in mem and "MemTotal" in mem:
            out.append(r("memory_available", mem["MemAvailable"], "By"))
            out.append(r("memory_used_ratio", round(1 - mem["MemAvailable"] / mem["MemTotal"], 4), ""))
        try:
            st = os.statvfs(self._disk_path)
            free = st.f_bavail * st.f_frsize
            total = st.f_blocks * st.f_frsize
            out.append(r("disk_free", free, "By"))
            out.append(r("disk_used_ratio", round(1 - free / total, 4) if total else 0.0, ""))
        except OSError as exc:
            out.append(r("disk_free", None, "By", status=ERROR, detail=f"{self._disk_path}: {exc.strerror}"))
        up = uptime()
        if up is not None:
            out.append(r("uptime", round(up, 1), "s"))
        probe = out[0] if out else r("uptime", None, "s", status=ERROR, detail="no /proc")
        out.append(r("clock_synced", probe.synced, "", status=OK))
        return out
