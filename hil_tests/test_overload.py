"""A gateway configured beyond its CPU: the real agent sheds polls, keeps delivering, says so, recovers.

80 emulated Modbus TCP meters of 50 points, each polled every 10 ms, ask the
agent for 400,000 readings a second, far more than one event loop can read,
commit and send on any gateway. The emulators run in a process of their own
and the uplink goes to a real Mosquitto. Nothing here asserts a speed: the
test compares what was delivered (acknowledged by the broker) with what was
produced over the same stretch, and checks what the agent reports.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.diag.client import DiagClient
from hil_tests.agent_process import REPO, AgentProcess, write_config
from hil_tests.broker import MosquittoBroker

DEVICES = 80
POLL_INTERVAL = 0.01
U16, F32 = 25, 25  # 75 holding registers: one block read per poll

EMULATORS = """
import asyncio, json, sys
sys.path.insert(0, {repo!r})
from hil_tests.emulators.modbus_devices import EmulatedDevice
from hil_tests.emulators.modbus_servers import TcpEmulator

async def main():
    ports = []
    for i in range({devices}):
        dev = EmulatedDevice(1)
        for a in range({u16}):
            dev.set_value("holding", a, i * 100 + a, "uint16")
        for k in range({f32}):
            dev.set_value("holding", {u16} + 2 * k, 20.0 + k, "float32")
        for attempt in range(5):  # a free port may be taken by another process before we bind it
            emu = TcpEmulator([dev], size=128)
            try:
                await emu.start()
                break
            except RuntimeError:
                if attempt == 4:
                    raise
        ports.append(emu.port)
    print(json.dumps(ports), flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


@pytest.fixture
def meters() -> Iterator[tuple[subprocess.Popen[str], list[int]]]:
    proc = subprocess.Popen([sys.executable, "-c", EMULATORS.format(repo=str(REPO), devices=DEVICES, u16=U16, f32=F32)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        ports = json.loads(proc.stdout.readline())
        yield proc, ports
    finally:
        proc.kill()
        proc.wait(10)


def gateway_config(tmp_path: Path, ports: list[int], broker: MosquittoBroker) -> Path:
    profile = tmp_path / "meter50.toml"
    points = [f'[[points]]\nname = "u{a}"\ntable = "holding"\naddress = {a}\ntype = "uint16"\n' for a in range(U16)]
    points += [f'[[points]]\nname = "f{k}"\ntable = "holding"\naddress = {U16 + 2 * k}\ntype = "float32"\n' for k in range(F32)]
    profile.write_text('[profile]\nname = "meter50"\nmax_gap = 0\n\n' + "\n".join(points))
    parts = [
        f'[gateway]\nid = "gw-overload"\nsite = "test"\ndata_dir = "{tmp_path / "data"}"\n',
        '[clock]\nsync_source = "assume"\n',
        f'[uplink]\nbroker = "external"\nhost = "127.0.0.1"\nport = {broker.port}\n',
    ]
    for i, port in enumerate(ports):
        parts.append(f'[[buses]]\nname = "lan-{i}"\ntype = "modbus_tcp"\nhost = "127.0.0.1"\nport = {port}\n')
        parts.append(
            f'[[devices]]\nname = "meter-{i:02d}"\ndriver = "modbus"\nbus = "lan-{i}"\nunit_id = 1\nprofile = "{profile}"\n'
            f"poll_interval = {POLL_INTERVAL}\n[devices.failure]\ntimeout = 2.0\nretries = 0\n"
        )
    return write_config(tmp_path, "\n".join(parts))


def status(agent: AgentProcess) -> dict[str, Any]:
    with DiagClient(str(agent.diag_socket), timeout=30) as client:
        return client.call("status")  # type: ignore[no-any-return]


def test_overloaded_gateway_sheds_polls_keeps_delivering_and_recovers(
    tmp_path: Path, mosquitto: MosquittoBroker, meters: tuple[subprocess.Popen[str], list[int]]
) -> None:
    emulators, ports = meters
    agent = AgentProcess(gateway_config(tmp_path, ports, mosquitto)).start(timeout=60)
    try:
        overloaded = agent.wait_for(lambda: (s := status(agent))["load"]["overloaded"] and s, timeout=90, interval=1.0)
        assert overloaded, f"the agent never reported overload: {status(agent)['load']}"
        assert any(f["area"] == "load" and f["level"] == "degraded" for f in overloaded["findings"]), overloaded["findings"]

        # Let the governor settle, then compare delivery with production over a stretch of time.
        agent.wait_for(lambda: False, timeout=5)
        before = status(agent)
        agent.wait_for(lambda: False, timeout=15)
        after = status(agent)
        produced = after["outbox"]["next_seq"] - before["outbox"]["next_seq"]
        delivered = after["uplink"]["sent"] - before["uplink"]["sent"]
        assert produced > 0
        # The in-flight window and the commit interval hold a few tens of thousands
        # of readings at any moment; beyond that, delivery keeps pace with production.
        assert delivered >= 0.8 * produced, (produced, delivered, after["outbox"], after["load"])
        assert after["outbox"]["dropped"] == 0, after["outbox"]
        assert after["load"]["overloaded"], after["load"]
        # Every meter is still read, each of them less often than configured.
        for name, dev in after["devices"].items():
            assert dev["online"], (name, dev)
            assert dev["polls"] > before["devices"][name]["polls"], name
            assert dev["polls_skipped"] > before["devices"][name]["polls_skipped"], (name, dev)
        assert agent.log_text().count("gateway overloaded") == 1, agent.log_tail()

        # The load goes away (the meters vanish): the agent says the overload is over.
        emulators.kill()
        recovered = agent.wait_for(lambda: not (s := status(agent))["load"]["overloaded"] and s, timeout=90, interval=1.0)
        assert recovered, f"overload never ended: {status(agent)['load']}"
        assert recovered["load"]["poll_floor"] == 0
        assert not any(f["area"] == "load" for f in recovered["findings"])
        log = agent.log_text()
        assert log.count("overload over after") == 1 and log.count("gateway overloaded") == 1, agent.log_tail()
    finally:
        assert agent.stop() == 0, agent.log_tail()
