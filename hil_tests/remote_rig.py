"""A running agent (in this process) with remote management, a real Mosquitto and the reference hub client."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.config.loader import load_config_text
from agent.remote.envelope import public_key_b64
from agent.remote.hub_client import HubClient
from agent.runtime.app import Agent

GATEWAY, SITE = "gw-remote", "lab"


def config_text(data_dir: Path, port: int, *, key: Ed25519PrivateKey | None, extra: str = "", remote: str = "") -> str:
    keys = f'trusted_keys = ["{public_key_b64(key)}"]' if key is not None else ""
    return f"""
[gateway]
id = "{GATEWAY}"
site = "{SITE}"
data_dir = "{data_dir}"

[clock]
sync_source = "assume"

[uplink]
broker = "external"
host = "127.0.0.1"
port = {port}
health_interval = 3600

[remote]
{keys}
{remote}

[diagnostics]
enabled = false
{extra}
"""


@asynccontextmanager
async def running_agent(tmp_path: Path, port: int, key: Ed25519PrivateKey | None, *, extra: str = "", remote: str = "") -> AsyncIterator[tuple[Agent, HubClient]]:
    cfg_file = tmp_path / "gateway.toml"
    cfg_file.write_text(config_text(tmp_path / "data", port, key=key, extra=extra, remote=remote))
    agent = Agent(load_config_text(cfg_file.read_text(), str(cfg_file)), config_path=str(cfg_file))
    hub = HubClient()
    await asyncio.to_thread(hub.start, "127.0.0.1", port)
    await agent.start()
    try:
        for _ in range(200):  # bounded: connected and subscribed to its command topic
            if agent.uplink.stats()["connected"]:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        yield agent, hub
    finally:
        await agent.shutdown()
        hub.stop()


async def result(hub: HubClient, cid: str, timeout: float = 20.0) -> dict:
    return await asyncio.to_thread(hub.result, cid, ("done", "failed", "refused"), timeout)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class AgentProcess:
    """`python -m agent.cli.main run --config FILE` as systemd would start it; output goes to a file."""

    def __init__(self, cfg: Path, log_file: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> None:
        import os
        import subprocess
        import sys

        self.log_file = log_file
        root = Path(__file__).resolve().parents[1]
        with open(log_file, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "agent.cli.main", "run", "--config", str(cfg), *args],
                cwd=root,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def stop(self) -> int:
        import signal
        import subprocess

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode
