"""A running agent with emulated devices, for the diag tests and bench/bench_diag.py.

`Emulators` runs the device emulators on their own event loop in a thread, so
a test can switch faults on while the agent (a real subprocess) polls them.
`AgentProcess` writes a gateway config, starts `edge-agent run` and waits for
its diag socket; `diag(...)` runs the real CLI as a subprocess.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


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


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    e.pop("JOURNAL_STREAM", None)
    e["NO_COLOR"] = "1"
    return e


class AgentProcess:
    def __init__(self, workdir: Path, config_text: str) -> None:
        self.workdir = Path(workdir)
        self.config = self.workdir / "gateway.toml"
        self.config.write_text(config_text)
        self.log = self.workdir / "agent.log"
        self.socket = self.workdir / "data" / "diag.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0, *, socket: bool = True) -> AgentProcess:
        """Start the agent; wait for its diag socket (or, with socket=False, its "running" log line)."""
        self._log_fh = open(self.log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "agent.cli.main", "run", "--config", str(self.config)], cwd=REPO, env=env(), stdout=self._log_fh, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"agent exited with {self.proc.returncode}:\n{self.log_text()}")
            if self.socket.exists() if socket else " running: gateway " in self.log_text():
                return self
            time.sleep(0.05)
        raise RuntimeError(f"agent did not open {self.socket} within {timeout} s:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if getattr(self, "_log_fh", None):
            self._log_fh.close()

    def diag(self, *args: str, timeout: float = 60.0, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return diag("--config", str(self.config), *args, timeout=timeout, extra_env=extra_env)

    def wait_for(self, predicate: Any, timeout: float = 15.0, interval: float = 0.2) -> Any:
        """Poll `predicate()` until it returns something truthy (returned) or time runs out (None)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        return None


def diag(*args: str, timeout: float = 60.0, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `edge-agent diag <command> <args>`; args[0:2] may be --config FILE (moved after the command)."""
    argv = list(args)
    opts: list[str] = []
    if argv[:1] == ["--config"]:
        opts, argv = argv[:2], argv[2:]
    # global options go after the (sub)command words
    words = []
    while argv and not argv[0].startswith("-"):
        words.append(argv.pop(0))
    e = env()
    e.update(extra_env or {})
    return subprocess.run([PYTHON, "-m", "agent.cli.main", "diag", *words, *opts, *argv], cwd=REPO, env=e, capture_output=True, text=True, timeout=timeout)


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
