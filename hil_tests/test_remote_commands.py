"""Commands from the hub, end to end: real Mosquitto, a running agent, a Modbus TCP device.

Every command gets `accepted` then `done`/`failed` with its correlation id on
<base>/result; refused ones get `refused` and a durable `command_refused` event.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import tarfile
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.remote.hub_client import command, encode
from hil_tests.broker import MosquittoBroker
from hil_tests.emulators.modbus_devices import EmulatedDevice
from hil_tests.emulators.modbus_servers import TcpEmulator
from hil_tests.remote_rig import GATEWAY, SITE, result, running_agent

pytestmark = pytest.mark.asyncio

MODBUS = """
[[buses]]
name = "lan"
type = "modbus_tcp"
host = "127.0.0.1"
port = {port}

[[devices]]
name = "pump"
driver = "modbus"
bus = "lan"
unit_id = 3
poll_interval = 30
[[devices.points]]
name = "setpoint"
address = 10
type = "uint16"
writable = true
[[devices.points]]
name = "temperature"
table = "input"
address = 4
type = "int16"
scale = 0.1
unit = "Cel"
"""


async def test_everyday_commands_end_to_end(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    dev = EmulatedDevice(3)
    dev.set_value("input", 4, 21.5, "int16", scale=0.1)
    dev.set_value("holding", 10, 40)
    emu = TcpEmulator([dev])
    await emu.start()
    try:
        async with running_agent(tmp_path, mosquitto.port, None, extra=MODBUS.format(port=emu.port)) as (agent, hub):
            send = lambda name, args=None: hub.send(SITE, GATEWAY, command(name, GATEWAY, args))  # noqa: E731

            ping = await result(hub, send("ping"))
            assert ping["state"] == "done" and ping["data"]["boot"] == agent.clock.boot_id
            assert hub.states(ping["id"])[:1] == ["accepted"], "accepted comes first"

            read = await result(hub, send("read", {"device": "pump", "point": "temperature"}))
            assert read["state"] == "done" and read["data"]["value"] == pytest.approx(21.5) and read["data"]["unit"] == "Cel"

            write = await result(hub, send("write", {"device": "pump", "point": "setpoint", "value": 55}))
            assert write["state"] == "done"
            assert dev.read("holding", 10, 1) == [55], "the device really got the value"
            readonly = await result(hub, send("write", {"device": "pump", "point": "temperature", "value": 1}))
            assert readonly["state"] == "failed" and "not writable" in readonly["reason"]
            nodev = await result(hub, send("read", {"device": "nope", "point": "x"}))
            assert nodev["state"] == "failed" and "pump" in nodev["reason"], "the reason lists the devices there are"

            hub.messages.clear()
            reb = await result(hub, send("rebirth"))
            assert reb["state"] == "done"
            births = [p for t, p in hub.messages if t.endswith("/status") and b'"rebirth"' in p]
            assert births and b'"pump"' in births[0]

            lvl = await result(hub, send("log_level", {"level": "debug", "duration": 0.5}))
            assert lvl["state"] == "done" and logging.getLogger().level == logging.DEBUG
            for _ in range(60):
                if logging.getLogger().level != logging.DEBUG:
                    break
                await asyncio.sleep(0.05)
            assert logging.getLogger().level != logging.DEBUG, "the level goes back by itself"

            bundle = await result(hub, send("bundle"), timeout=60)
            assert bundle["state"] == "done", bundle
            d = bundle["data"]
            prefix = d["topic"] + "/"
            await asyncio.to_thread(hub.wait, lambda: sum(t.startswith(prefix) for t, _ in hub.messages) >= d["chunks"], 20)
            chunks = sorted(((int(t.rsplit("/", 1)[1]), p) for t, p in hub.messages if t.startswith(prefix)))
            data = b"".join(p for _, p in chunks)
            assert hashlib.sha256(data).hexdigest() == d["sha256"]
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                names = {n.rsplit("/", 1)[-1] for n in tar.getnames()}
            assert {"status.json", "config.toml", "manifest.json"} <= names

            reboot = await result(hub, send("reboot"))
            assert reboot["state"] == "failed" and "allow_reboot" in reboot["reason"]
    finally:
        await emu.stop()


async def test_replayed_expired_unsigned_tampered_and_foreign_commands_are_refused(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    key, stranger = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    async with running_agent(tmp_path, mosquitto.port, key) as (agent, hub):
        running_config = (tmp_path / "gateway.toml").read_bytes()
        body = command("ping", GATEWAY)
        assert (await result(hub, hub.send(SITE, GATEWAY, body)))["state"] == "done"
        hub.results.clear()
        hub.send(SITE, GATEWAY, body)  # the same message again
        replay = await result(hub, body["id"])
        assert replay["state"] == "refused" and replay["data"]["code"] == "replayed"
        assert hub.states(body["id"]) == ["refused"], "a replay is never run"

        old = command("ping", GATEWAY, ts=time.time() - 3600)
        assert (await result(hub, hub.send(SITE, GATEWAY, old)))["data"]["code"] == "expired"

        cfg = command("config", GATEWAY, {"config": "x", "version": 9})
        assert (await result(hub, hub.send(SITE, GATEWAY, cfg)))["data"]["code"] == "unsigned"

        good = command("config", GATEWAY, {"config": "[gateway]\nid='gw-remote'\n", "version": 9})
        tampered = encode(good, key).replace(b'\\"version\\":9', b'\\"version\\":99')
        assert b"99" in tampered
        hub.send(SITE, GATEWAY, good, raw=tampered)
        assert (await result(hub, good["id"]))["data"]["code"] == "bad_signature"
        foreign = command("config", GATEWAY, {"config": "x", "version": 9})
        assert (await result(hub, hub.send(SITE, GATEWAY, foreign, stranger)))["data"]["code"] == "bad_signature"
        other_gw = command("config", "gw-other", {"config": "x", "version": 9})
        hub.sub.client.publish(f"city/{SITE}/{GATEWAY}/cmd/config", encode(other_gw, key), qos=1)
        assert (await result(hub, other_gw["id"]))["data"]["code"] == "wrong_target"

        events = await asyncio.to_thread(hub.wait, lambda: len(hub.events("command_refused")) >= 6 and hub.events("command_refused"), 20)
        codes = {e["data"]["code"] for e in events}
        assert {"replayed", "expired", "unsigned", "bad_signature", "wrong_target"} <= codes
        assert agent.remote.status()["config_version"] == 0, "nothing was applied"
        assert (tmp_path / "gateway.toml").read_bytes() == running_config and not (tmp_path / "data" / "remote" / "config_trial.json").exists()
