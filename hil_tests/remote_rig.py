"""Remote management against a real Mosquitto and the reference hub client.

`config_text(...)` is a gateway config with [remote] on; `running_agent(...)`
runs that agent in this process (for the agent as its own process, see
hil_tests/agent_process.py).
"""

from __future__ import annotations

import asyncio
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
async def running_agent(
    tmp_path: Path, port: int, key: Ed25519PrivateKey | None, *, extra: str = "", remote: str = ""
) -> AsyncIterator[tuple[Agent, HubClient]]:
    cfg_file = tmp_path / "gateway.toml"
    cfg_file.write_text(config_text(tmp_path / "data", port, key=key, extra=extra, remote=remote))
    agent = Agent(load_config_text(cfg_file.read_text(), str(cfg_file)), config_path=str(cfg_file))
    hub = HubClient()
    await asyncio.to_thread(hub.start, "127.0.0.1", port)
    await agent.start()
    try:
        # Ready: the hub has the agent's "online" status, which the agent publishes
        # right after it subscribes to its command topic on the same connection.
        online = await asyncio.to_thread(hub.wait, lambda: any(t.endswith(f"/{GATEWAY}/status") and b'"online"' in p for t, p in hub.messages), 30)
        assert online, f"the agent never reported online to the hub: {agent.uplink.stats()}"
        yield agent, hub
    finally:
        await agent.shutdown()
        hub.stop()


async def result(hub: HubClient, cid: str, timeout: float = 20.0) -> dict:
    return await asyncio.to_thread(hub.result, cid, ("done", "failed", "refused"), timeout)
