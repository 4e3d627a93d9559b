"""Remote management of a real agent process (`edge-agent run`) through a real Mosquitto.

- restart re-executes the agent in place and the result comes from the new process;
- reboot goes through `systemctl reboot` (a stub on PATH records the call) and only when allowed;
- a signed config update is applied and kept when healthy; a bad one (the hub
  unreachable) rolls back by itself after the deadline and is reported; an
  older version is refused as a downgrade.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.remote.hub_client import HubClient, command
from hil_tests.agent_process import AgentProcess
from hil_tests.broker import MosquittoBroker, free_port
from hil_tests.remote_rig import GATEWAY, SITE, config_text

ROOT = Path(__file__).resolve().parents[1]


def _started(hub: HubClient, proc: AgentProcess) -> None:
    ok = hub.wait(lambda: any(t.endswith(f"{GATEWAY}/status") and b'"online"' in p for t, p in hub.messages), 30)
    assert ok, proc.log_text()[-3000:]


def test_restart_and_reboot_commands(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    bin_dir, calls = tmp_path / "bin", tmp_path / "systemctl.calls"
    bin_dir.mkdir()
    stub = bin_dir / "systemctl"
    stub.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(config_text(tmp_path / "data", mosquitto.port, key=None, remote="allow_reboot = true\nrollback_deadline = 10"))
    hub = HubClient().start("127.0.0.1", mosquitto.port)
    proc = AgentProcess(cfg, env={"PATH": f"{bin_dir}:{os.environ['PATH']}"}).start()
    try:
        _started(hub, proc)
        cli = subprocess.run(
            [sys.executable, "-m", "agent.cli.main", "remote", "send", "ping", "--gateway", GATEWAY, "--site", SITE, "--port", str(mosquitto.port)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cli.returncode == 0 and '"state": "done"' in cli.stdout, cli.stdout + cli.stderr
        pid = proc.proc.pid
        restart = hub.result(hub.send(SITE, GATEWAY, command("restart", GATEWAY)), timeout=40)
        assert restart is not None and restart["state"] == "done", proc.log_text()[-3000:]
        assert hub.states(restart["id"]) == ["accepted", "done"]
        assert "re-executing the agent" in proc.log_text() and proc.log_text().count("running: gateway") == 2
        assert proc.proc.poll() is None and proc.proc.pid == pid, "same process (what systemd supervises), new program image"

        reboot = hub.result(hub.send(SITE, GATEWAY, command("reboot", GATEWAY)), timeout=30)
        assert reboot is not None and reboot["state"] == "done", reboot
        assert calls.read_text().split("\n")[0] == "reboot"
    finally:
        assert proc.stop() == 0, proc.log_text()[-3000:]
        hub.stop()


def test_config_update_is_kept_when_healthy_and_rolls_back_by_itself_when_not(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    key = Ed25519PrivateKey.generate()
    data = tmp_path / "data"
    remote = "rollback_deadline = 5"
    cfg = tmp_path / "gateway.toml"
    v0 = config_text(data, mosquitto.port, key=key, remote=remote)
    cfg.write_text(v0)
    cfg.chmod(0o640)
    v1 = v0.replace('site = "lab"', 'site = "lab"\ndescription = "version one"')
    v2 = config_text(data, free_port(), key=key, remote=remote)  # valid, but the hub's broker is not there
    hub = HubClient().start("127.0.0.1", mosquitto.port)
    proc = AgentProcess(cfg).start()
    try:
        _started(hub, proc)
        ok = hub.result(hub.send(SITE, GATEWAY, command("config", GATEWAY, {"config": v1, "version": 1}), key), timeout=40)
        assert ok is not None and ok["state"] == "done", proc.log_text()[-3000:]
        assert ok["data"]["version"] == 1 and cfg.read_text() == v1
        assert stat.S_IMODE(cfg.stat().st_mode) == 0o640, "the file keeps its permissions"
        assert hub.wait(lambda: any(t.endswith("/status") and b"version one" in p for t, p in hub.messages), 20), "running the new config"
        assert hub.wait(lambda: hub.events("config_applied"), 20)

        bad = hub.send(SITE, GATEWAY, command("config", GATEWAY, {"config": v2, "version": 2}), key)
        failed = hub.result(bad, timeout=60)
        assert failed is not None and failed["state"] == "failed", proc.log_text()[-3000:]
        assert "rolled back to version 1" in failed["reason"] and "no connection to the hub broker" in failed["reason"]
        assert hub.states(bad) == ["accepted", "failed"]
        assert cfg.read_text() == v1, "the last good config is back in place"
        ev = hub.wait(lambda: hub.events("config_rolled_back"), 20)
        assert ev and ev[0]["data"]["version"] == 2 and ev[0]["data"]["restored_version"] == 1
        assert not (data / "remote" / "config_trial.json").exists()

        old = hub.result(hub.send(SITE, GATEWAY, command("config", GATEWAY, {"config": v0, "version": 1}), key), timeout=20)
        assert old is not None and old["state"] == "refused" and old["data"]["code"] == "downgrade"
        assert hub.states(old["id"]) == ["refused"]
        assert cfg.read_text() == v1
        assert json.loads((data / "remote" / "state.json").read_text())["config_version"] == 1
    finally:
        assert proc.stop() == 0, proc.log_text()[-3000:]
        hub.stop()


def test_a_config_that_keeps_killing_the_agent_is_rolled_back_at_the_next_start(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    """As systemd restarts a crashing agent: the third start of a trial puts the old config back at once."""
    data = tmp_path / "data"
    cfg = tmp_path / "gateway.toml"
    good = config_text(data, mosquitto.port, key=None)
    crashing = good.replace('site = "lab"', 'site = "lab"\ndescription = "crashed twice"')
    cfg.write_text(crashing)
    (data / "remote").mkdir(parents=True)
    (data / "remote" / "config.previous.toml").write_text(good)
    (data / "remote" / "state.json").write_text('{"config_version": 2}')
    trial = {"id": "c-crash", "version": 3, "previous_version": 2, "deadline": 120, "starts": 2, "created": 0}
    (data / "remote" / "config_trial.json").write_text(json.dumps(trial))
    hub = HubClient().start("127.0.0.1", mosquitto.port)
    proc = AgentProcess(cfg).start()
    try:
        res = hub.result("c-crash", timeout=40)
        assert res is not None and res["state"] == "failed", proc.log_text()[-3000:]
        assert "rolled back to version 2" in res["reason"] and "stopped 2 times" in res["reason"]
        assert cfg.read_text() == good
        assert hub.wait(lambda: hub.events("config_rolled_back"), 20)
    finally:
        assert proc.stop() == 0, proc.log_text()[-3000:]
        hub.stop()
