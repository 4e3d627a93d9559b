"""Emulated devices and a gateway config for the diag tests and bench/bench_diag.py.

`Emulators` runs the device emulators on their own event loop in a thread, so
a test can switch faults on while the agent (a real subprocess, see
hil_tests/agent_process.py) polls them. `gateway_toml(...)` is a config for
that agent: an external broker, optionally one Modbus TCP bus and devices.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any


class Emulators:
    """An asyncio loop in a daemon thread for emulator servers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="emulators", daemon=True)
        self._thread.start()
        self._stoppers: list[Any] = []

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self, emulator: Any) -> Any:
        self.run(emulator.start())
        self._stoppers.append(emulator)
        return emulator

    def close(self) -> None:
        for emu in reversed(self._stoppers):
            try:
                self.run(emu.stop(), timeout=5.0)
            except Exception:  # noqa: BLE001 - teardown goes on
                pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5.0)


def gateway_toml(data_dir: Path, *, broker_port: int, modbus_port: int | None = None, devices: str = "", extra: str = "", tls: str = "") -> str:
    bus = f'\n[[buses]]\nname = "tcp-1"\ntype = "modbus_tcp"\nhost = "127.0.0.1"\nport = {modbus_port}\n' if modbus_port else ""
    return f"""[gateway]
id = "gw-diag"
site = "bench"
data_dir = "{data_dir}"

[uplink]
broker = "external"
host = "127.0.0.1"
port = {broker_port}
reconnect_initial = 0.2
reconnect_max = 1.0
{tls}
{extra}
{bus}
{devices}
"""


METER_AND_CLIMATE = """
[[devices]]
name = "meter-1"
driver = "modbus"
bus = "tcp-1"
unit_id = 1
profile = "eastron_sdm120"
poll_interval = 0.5
failure = {{ timeout = 0.5, retries = 0, backoff_initial = 0.2, backoff_max = 0.5 }}

[[devices]]
name = "climate-1"
driver = "modbus"
bus = "tcp-1"
unit_id = 2
profile = "xy_md02"
poll_interval = 0.5
failure = {{ timeout = 0.5, retries = 0, backoff_initial = 0.2, backoff_max = 0.5 }}
""".replace("{{", "{").replace("}}", "}")
