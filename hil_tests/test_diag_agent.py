"""`edge-agent diag` against a running agent: emulated Modbus devices, the real broker.

Each test starts the agent as a subprocess (`edge-agent run`) and runs the
real CLI; faults are switched on in the emulators while the agent polls.
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.diag.client import DiagClient
from hil_tests.agent_process import PYTHON, REPO, AgentProcess, agent_env, write_config
from hil_tests.diag_env import METER_AND_CLIMATE, Emulators, gateway_toml
from hil_tests.emulators.modbus_devices import profile_device
from hil_tests.emulators.modbus_servers import TcpEmulator

ASSUME_CLOCK = '[clock]\nsync_source = "assume"\n'


class Rig:
    def __init__(self, agent: AgentProcess, meter: Any, climate: Any, tcp: Any, broker: Any) -> None:
        self.agent, self.meter, self.climate, self.tcp, self.broker = agent, meter, climate, tcp, broker

    def status(self) -> tuple[int, dict[str, Any]]:
        """The agent's status over its socket, in-process (polling through the CLI would cost a process each time)."""
        with DiagClient(str(self.agent.diag_socket)) as c:
            st = c.call("status")
        return {"ok": 0, "degraded": 1, "broken": 2}[st["health"]], st

    def finding(self, subject: str) -> dict[str, Any] | None:
        _, st = self.status()
        return next((f for f in st["findings"] if f["subject"] == subject), None)

    def wait_finding(self, subject: str, level: str, timeout: float = 15.0) -> dict[str, Any] | None:
        return self.agent.wait_for(lambda: (f := self.finding(subject)) and f["level"] == level and f, timeout)


@pytest.fixture
def rig(tmp_path: Path, mosquitto: Any) -> Iterator[Rig]:
    emus = Emulators()
    meter, climate = profile_device("eastron_sdm120", 1), profile_device("xy_md02", 2)
    tcp = emus.start(TcpEmulator([meter, climate]))
    agent = AgentProcess(
        write_config(tmp_path, gateway_toml(tmp_path / "data", broker_port=mosquitto.port, modbus_port=tcp.port, devices=METER_AND_CLIMATE, extra=ASSUME_CLOCK))
    )
    try:
        agent.start()
        r = Rig(agent, meter, climate, tcp, mosquitto)
        # healthy and polled: a device still waiting for its first poll counts as ok
        healthy = agent.wait_for(lambda: (st := r.status())[0] == 0 and all(d["online"] for d in st[1]["devices"].values()), 20)
        assert healthy, f"agent never became healthy:\n{agent.diag('status').stdout}\n{agent.log_text()}"
        yield r
    finally:
        agent.stop()
        emus.close()


def test_healthy_gateway_status_devices_and_readings_show_the_facts(rig: Rig) -> None:
    code, st = rig.status()
    assert code == 0 and st["health"] == "ok"
    assert st["gateway"] == "gw-diag" and st["uplink"]["connected"] and st["uplink"]["broker"].endswith(f":{rig.broker.port}")
    assert st["devices"]["meter-1"]["online"] and st["devices"]["climate-1"]["online"]
    assert {"agent", "pymodbus", "paho-mqtt"} <= set(st["versions"])

    human = rig.agent.diag("status")
    assert human.returncode == 0
    assert "health OK" in human.stdout and "meter-1" in human.stdout and "connected yes" in human.stdout
    assert "\x1b[" not in human.stdout, "no colour codes when NO_COLOR is set / not a terminal"

    devices = rig.agent.diag("devices")
    assert devices.returncode == 0
    voltage = next(line for line in devices.stdout.splitlines() if " voltage " in line)
    volts = float(voltage.split("voltage", 1)[1].split()[0])
    assert 200 < volts < 260 and " V " in voltage and " ok " in voltage
    assert "Cel" in devices.stdout and "relative_humidity" in devices.stdout

    readings = rig.agent.diag("readings", "--device", "climate-1", "--last", "4", "--json")
    got = json.loads(readings.stdout)["readings"]
    assert got and {r["device"] for r in got} == {"climate-1"} and all(r["status"] == "ok" for r in got)

    # --follow streams new readings as they are made, until the technician stops it
    follow = subprocess.Popen(
        [PYTHON, "-m", "agent.cli.main", "diag", "readings", "--follow", "--last", "0", "--metric", "temperature", "--json", "--config", str(rig.agent.config)],
        cwd=REPO, env=agent_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        lines = [json.loads(follow.stdout.readline()) for _ in range(3)]
    finally:
        follow.terminate()
        follow.wait(10)
    assert [r["metric"] for r in lines] == ["temperature"] * 3 and lines[0]["unit"] == "Cel"
    assert lines[0]["mono_ns"] < lines[1]["mono_ns"] < lines[2]["mono_ns"], "new readings, in order"


def test_faults_in_the_emulators_are_named_by_status(rig: Rig) -> None:
    rig.meter.silent = True
    rig.climate.wrong_unit = True
    meter = rig.wait_finding("meter-1", "broken")
    climate = rig.wait_finding("climate-1", "broken")
    assert meter and "timeout" in meter["summary"] and "no answer from unit 1" in meter["summary"]
    assert "wiring" in meter["hint"] and "modbus scan" in meter["hint"]
    assert climate and "answer from unit 3, expected 2" in climate["summary"]
    assert "unit_id" in climate["hint"]
    r = rig.agent.diag("status")
    assert r.returncode == 2
    assert r.stdout.index("FAIL") < r.stdout.index("OK "), "worst first"
    # recovery is seen too: online again, the recent errors still reported
    rig.meter.clear_faults()
    rig.climate.clear_faults()
    recovered = rig.wait_finding("meter-1", "degraded")
    assert recovered and recovered["summary"].startswith("online, but")


def test_slow_device_is_named_and_modbus_read_shows_how_slow(rig: Rig) -> None:
    rig.climate.delay = 0.9  # the device's failure.timeout is 0.5 s
    slow = rig.wait_finding("climate-1", "broken")
    assert slow and "timeout" in slow["summary"] and "larger failure.timeout" in slow["hint"]
    r = rig.agent.diag("modbus", "read", "--bus", "tcp-1", "--unit", "2", "--address", "1", "--count", "2", "--table", "input", "--timeout", "3")
    assert r.returncode == 0, r.stderr
    assert "answered in" in r.stdout, "a slow device answers a read with a longer timeout: it is there, just slow"


def test_modbus_scan_and_read_through_the_agent(rig: Rig) -> None:
    scan = rig.agent.diag("modbus", "scan", "--bus", "tcp-1", "--first", "1", "--last", "6", "--timeout", "0.2", "--json")
    assert scan.returncode == 0, scan.stderr
    res = json.loads(scan.stdout)["results"][0]
    assert [f["unit"] for f in res["found"]] == [1, 2] and res["tried"] == 6
    assert "via the agent" in res["settings"]

    read = rig.agent.diag("modbus", "read", "--bus", "tcp-1", "--unit", "1", "--address", "0", "--count", "2", "--table", "input", "--json")
    out = json.loads(read.stdout)
    row = next(r for r in out["decoded"]["rows"] if r["offset"] == 0 and r["order"] == "ABCD")
    assert 200 < row["float32"] < 260, "SDM120 voltage is a big-endian float32 at input 0"
    swapped = next(r for r in out["decoded"]["rows"] if r["offset"] == 0 and r["order"] == "CDAB")
    assert not 200 < abs(swapped["float32"]) < 260, "the wrong word order shows a different number side by side"
    human = rig.agent.diag("modbus", "read", "--bus", "tcp-1", "--unit", "1", "--address", "0", "--count", "2", "--table", "input")
    assert "ABCD" in human.stdout and "CDAB" in human.stdout and "float32" in human.stdout

    missing = rig.agent.diag("modbus", "read", "--bus", "tcp-1", "--unit", "9", "--address", "0", "--table", "input")
    assert missing.returncode == 2 and "unit 9" in missing.stderr and "->" in missing.stderr


def test_broker_down_is_named_by_status_and_mqtt_check(rig: Rig) -> None:
    rig.broker.stop()
    uplink = rig.wait_finding("uplink", "broken")
    assert uplink and "not connected" in uplink["summary"] and "mqtt check" in uplink["hint"]
    check = rig.agent.diag("mqtt", "check", "--json", "--timeout", "3")
    assert check.returncode == 2
    res = json.loads(check.stdout)
    assert res["failed_step"] == "tcp" and "broker is down" in res["steps"][-1]["hint"]
    assert [s["step"] for s in res["steps"]] == ["dns", "tcp"] and res["steps"][0]["ok"]
    rig.broker.start()
    assert rig.agent.wait_for(lambda: rig.status()[0] == 0, 20)
    ok = rig.agent.diag("mqtt", "check", "--json")
    assert ok.returncode == 0 and [s["step"] for s in json.loads(ok.stdout)["steps"]] == ["dns", "tcp", "auth", "publish"]


def test_buffer_and_export_show_what_waits_while_the_broker_is_down(rig: Rig, tmp_path: Path) -> None:
    rig.broker.stop()
    assert rig.wait_finding("uplink", "broken")
    assert rig.agent.wait_for(lambda: rig.status()[1]["outbox"]["depth"] >= 30, 15)
    res = json.loads(rig.agent.diag("buffer", "--json", "--device", "meter-1", "--limit", "5").stdout)
    assert res["count"] > 0 and {d["device"] for d in res["per_device"]} == {"meter-1"}
    assert len(res["rows"]) == 5 and res["rows"][0]["seq"] < res["rows"][-1]["seq"]
    out = tmp_path / "export.jsonl"
    exp = rig.agent.diag("buffer", "--export", str(out), "--limit", "0")
    assert exp.returncode == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) >= 30 and {"meter-1", "climate-1"} <= {r["device"] for r in rows}
    assert [r["seq"] for r in rows] == sorted(r["seq"] for r in rows)


def test_bundle_has_status_frames_and_logs_and_no_planted_secret(tmp_path: Path, mosquitto_factory: Any) -> None:
    secrets = {"pw": "Hunter2-planted-mqtt-pw", "token": "tok-planted-9f8e7d", "cam": "cam-planted-pw"}
    broker = mosquitto_factory(passwords={"gw-diag": secrets["pw"]})
    (tmp_path / "mqtt.pw").write_text(secrets["pw"] + "\n")
    os.chmod(tmp_path / "mqtt.pw", 0o600)
    log_file = tmp_path / "agent.log"
    emus = Emulators()
    tcp = emus.start(TcpEmulator([profile_device("eastron_sdm120", 1), profile_device("xy_md02", 2)]))
    extra = (
        ASSUME_CLOCK
        + f'[diagnostics]\nlog_file = "{log_file}"\njournal_unit = "edge-agent-test-none"\n'
        + f'[vision]\nenabled = false\n\n[[cameras]]\nname = "cam-1"\nsource = "rtsp://admin:{secrets["cam"]}@10.0.0.5/stream"\nenabled = false\n'
    )
    text = gateway_toml(tmp_path / "data", broker_port=broker.port, modbus_port=tcp.port, devices=METER_AND_CLIMATE, extra=extra)
    text = text.replace("[uplink]\n", f'[uplink]\nusername = "gw-diag"\npassword_file = "{tmp_path / "mqtt.pw"}"\n')
    text = "# hub api_token = " + secrets["token"] + "\n" + text
    agent = AgentProcess(write_config(tmp_path, text))
    try:
        agent.start()
        assert agent.wait_for(lambda: Rig(agent, None, None, None, None).status()[1]["uplink"].get("connected"), 20), agent.log_text()
        # the token also lands in the log the bundle carries
        with open(log_file, "a") as fh:
            fh.write(f"12:00:00 INFO something token={secrets['token']} happened\n")
        out = tmp_path / "support.tar.gz"
        r = agent.diag("bundle", "--output", str(out))
        assert r.returncode == 0, r.stderr
        assert oct(os.stat(out).st_mode & 0o777) == "0o600"
        with tarfile.open(out) as tar:
            members = {m.name.split("/", 1)[1]: tar.extractfile(m).read().decode() for m in tar.getmembers() if m.isfile()}
    finally:
        agent.stop()
        emus.close()
    assert {"config.toml", "status.json", "describe.json", "versions.json", "frames.json", "logs.txt", "manifest.json"} <= set(members)
    everything = "\n".join(members.values())
    for name, secret in secrets.items():
        assert secret not in everything, f"planted {name} secret leaked into the bundle"
    assert "<redacted>" in members["config.toml"] and "rtsp://admin:<redacted>@10.0.0.5" in members["config.toml"]
    assert "password_file" in members["config.toml"], "the path stays, so the central team sees the setup"
    status = json.loads(members["status.json"])
    assert status["gateway"] == "gw-diag" and status["devices"]["meter-1"]["online"]
    frames = json.loads(members["frames.json"])
    assert {e["dir"] for e in frames["bus:tcp-1"]} >= {"tx", "rx"}
    assert "token=<redacted>" in members["logs.txt"]
    assert json.loads(members["manifest.json"])["logs"] == str(log_file)


def test_offline_mode_says_so_and_opens_the_devices_itself(rig: Rig) -> None:
    assert rig.agent.proc is not None
    rig.agent.proc.kill()  # a crash: the socket file stays behind
    rig.agent.proc.wait(10)
    assert rig.agent.diag_socket.exists()
    st = rig.agent.diag("status")
    assert st.returncode == 2 and "agent not running" in st.stdout and "stale socket" in st.stdout
    assert "systemctl start edge-agent" in st.stdout
    read = rig.agent.diag("modbus", "read", "--bus", "tcp-1", "--unit", "2", "--address", "1", "--count", "2", "--table", "input")
    assert read.returncode == 0 and "opening tcp-1 directly" in read.stderr
    value = int(next(line for line in read.stdout.splitlines() if line.startswith("1 ")).split()[2])
    assert 0 < value < 600, "XY-MD02 temperature in tenths of a degree"
    follow = rig.agent.diag("readings", "--follow")
    assert follow.returncode == 2 and "not running" in follow.stderr
    bundle = rig.agent.diag("bundle", "--output", str(rig.agent.workdir / "offline.tar.gz"))
    assert bundle.returncode == 0, bundle.stderr
    with tarfile.open(rig.agent.workdir / "offline.tar.gz") as tar:
        names = {m.name.split("/", 1)[1]: m for m in tar.getmembers()}
        status = json.loads(tar.extractfile(names["status.json"]).read())
    assert status["agent_running"] is False and status["devices"]["meter-1"]["driver"] == "modbus"
    assert {"config.toml", "versions.json", "logs.txt", "manifest.json"} <= set(names)
