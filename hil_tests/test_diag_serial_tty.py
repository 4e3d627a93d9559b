"""Serial lines and terminals: sniffing pty serial lines, the agent holding an RTU port, and the CLI in a real pseudo-terminal."""

from __future__ import annotations

import fcntl
import json
import os
import select
import struct
import subprocess
import termios
import threading
import time
import tty
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.diag.client import DiagClient
from drivers.codecs import pms5003, sds011
from hil_tests.agent_process import PYTHON, REPO, AgentProcess, agent_env, diag, write_config
from hil_tests.diag_env import Emulators, gateway_toml
from hil_tests.emulators.modbus_devices import profile_device
from hil_tests.emulators.modbus_servers import PtyRtuEmulator


class FeedLine:
    """A serial sensor on a pty pair: writes `chunks` round-robin into the master side."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self._chunks, self._stop = chunks, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        i = 0
        while not self._stop.wait(0.05):
            try:
                os.write(self.master, self._chunks[i % len(self._chunks)])
            except OSError:
                return
            i += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def feed() -> Iterator[Any]:
    lines: list[FeedLine] = []

    def make(chunks: list[bytes]) -> FeedLine:
        lines.append(FeedLine(chunks))
        return lines[-1]

    yield make
    for line in lines:
        line.close()


def test_sniff_marks_sensor_frames_and_counts_garbage(feed: Any) -> None:
    line = feed([sds011.encode_frame(12.5, 30.0), b"\x00\x13garbage\xff", pms5003.encode_frame({"pm2_5": 17, "pm10": 23})])
    r = diag("serial", "sniff", "--port", line.path, "--seconds", "1", "--config", "/nonexistent", "--json")
    res = json.loads(r.stdout)
    assert res["summary"]["frames"].get("sds011", 0) >= 2 and res["summary"]["frames"].get("pms5003", 0) >= 2
    assert res["summary"]["unrecognised_bytes"] > 0
    sds = next(f for f in res["frames"] if f["codec"] == "sds011")
    assert "pm2_5=12.5" in sds["data"] and "pm10=30.0" in sds["data"]
    human = diag("serial", "sniff", "--port", line.path, "--seconds", "0.6", "--config", "/nonexistent")
    assert "<sds011 frame@" in human.stdout and "AA C0" in human.stdout


def test_garbage_only_line_is_named(feed: Any) -> None:
    line = feed([bytes(range(0x30, 0x60)), b"\x01\x02\x03\x04noise"])
    r = diag("serial", "sniff", "--port", line.path, "--seconds", "0.8", "--config", "/nonexistent")
    assert r.returncode == 1
    assert "frames none" in r.stdout and "no known frame" in r.stderr and "baud rate" in r.stderr


RTU_DEVICES = """
[[devices]]
name = "climate-rtu"
driver = "modbus"
bus = "rtu-1"
unit_id = 5
profile = "xy_md02"
poll_interval = 0.5
failure = { timeout = 0.4, retries = 0, backoff_initial = 0.2, backoff_max = 0.5 }
"""


@pytest.fixture
def rtu_agent(tmp_path: Path, mosquitto: Any) -> Iterator[tuple[AgentProcess, Any, Any]]:
    emus = Emulators()
    device = profile_device("xy_md02", 5)
    line = emus.start(PtyRtuEmulator([device]))
    bus = f'[[buses]]\nname = "rtu-1"\ntype = "modbus_rtu"\nport = "{line.path}"\nbaudrate = 9600\n'
    agent = AgentProcess(
        write_config(
            tmp_path, gateway_toml(tmp_path / "data", broker_port=mosquitto.port, devices=bus + RTU_DEVICES, extra='[clock]\nsync_source = "assume"\n')
        )
    )
    try:
        agent.start()
        yield agent, device, line
    finally:
        agent.stop()
        emus.close()


def _finding(agent: AgentProcess, subject: str) -> dict[str, Any] | None:
    with DiagClient(str(agent.diag_socket)) as c:
        return next((f for f in c.call("status")["findings"] if f["subject"] == subject), None)


def test_crc_errors_on_rs485_are_named_and_sniff_defers_to_the_agent(rtu_agent: Any) -> None:
    agent, device, line = rtu_agent
    assert agent.wait_for(lambda: (f := _finding(agent, "climate-rtu")) and f["summary"].startswith("online"), 20), agent.log_text()
    device.crc_error = True
    f = agent.wait_for(lambda: (f := _finding(agent, "climate-rtu")) and f["level"] == "broken" and f, 20)
    assert f and "CRC" in f["summary"] and "wiring" in f["hint"]
    r = agent.diag("serial", "sniff", "--bus", "rtu-1")
    assert r.returncode == 0, r.stderr
    assert "the agent holds" in r.stderr and line.path in r.stderr
    assert "flight recorder for bus:rtu-1" in r.stdout
    assert "modbus role=request, unit=5" in r.stdout, "requests in the recorder are recognised as Modbus frames"
    sweep = agent.diag("modbus", "scan", "--bus", "rtu-1", "--baud", "9600,19200")
    assert sweep.returncode == 2 and "the agent holds bus 'rtu-1'" in sweep.stderr and "systemctl stop edge-agent" in sweep.stderr


def _spawn_in_pty(args: list[str], extra_env: dict[str, str], cols: int = 110, rows: int = 45) -> tuple[subprocess.Popen[bytes], int]:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    e = agent_env()
    e.pop("NO_COLOR", None)
    e.update({"TERM": "xterm-256color", **extra_env})
    proc = subprocess.Popen([PYTHON, "-m", "agent.cli.main", "diag", *args], cwd=REPO, env=e, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    return proc, master


def _read_until(master: int, needles: list[bytes], timeout: float = 20.0) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(n in out for n in needles):
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                out += os.read(master, 65536)
            except OSError:
                break
    return out


def test_watch_draws_a_live_screen_in_a_pty_and_q_quits(rtu_agent: Any) -> None:
    agent, _device, _line = rtu_agent
    proc, master = _spawn_in_pty(["watch", "--interval", "0.3", "--config", str(agent.config)], {})
    try:
        screen = _read_until(master, [b"\x1b[?1049h", b"climate-rtu", b"health", b"(q quits)"])
        assert b"\x1b[?1049h" in screen, "full screen: the alternate screen is used"
        assert b"climate-rtu" in screen and b"gw-diag" in screen
        assert b"\x1b[32m" in screen or b"\x1b[33m" in screen, "colours on a terminal without NO_COLOR"
        redraws = _read_until(master, [b"\x1b[H\x1b[2J" * 1], 5)
        assert b"\x1b[H\x1b[2J" in redraws, "the screen keeps being redrawn"
        os.write(master, b"q")
        assert proc.wait(15) == 0
        tail = _read_until(master, [b"\x1b[?1049l"], 3)
        assert b"\x1b[?1049l" in screen + redraws + tail, "the terminal is restored"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        os.close(master)


def test_status_in_a_pty_has_colour_unless_no_color(rtu_agent: Any) -> None:
    agent, _device, _line = rtu_agent
    for extra, coloured in (({}, True), ({"NO_COLOR": "1"}, False)):
        proc, master = _spawn_in_pty(["status", "--config", str(agent.config)], extra)
        try:
            out = _read_until(master, [b"System"], 20)
            proc.wait(15)
        finally:
            os.close(master)
        assert b"climate-rtu" in out
        assert (b"\x1b[1m" in out) is coloured, out[:400]


def test_offline_scan_tries_each_baud_rate_and_parity_on_an_rtu_line() -> None:
    emus = Emulators()
    try:
        line = emus.start(PtyRtuEmulator([profile_device("xy_md02", 5), profile_device("xy_md02", 7)]))
        r = diag(
            "modbus",
            "scan",
            "--port",
            line.path,
            "--baud",
            "9600,19200",
            "--parity",
            "N,E",
            "--first",
            "4",
            "--last",
            "8",
            "--timeout",
            "0.15",
            "--config",
            "/nonexistent",
            "--json",
        )
        res = json.loads(r.stdout)
        assert r.returncode == 0, r.stderr
        assert [x["settings"] for x in res["results"]] == [f"{line.path} {b} 8{p}1" for b, p in (("9600", "N"), ("9600", "E"), ("19200", "N"), ("19200", "E"))]
        for x in res["results"]:
            # a pty cannot be set to even parity; a USB RS-485 adapter can
            assert [f["unit"] for f in x["found"]] == [5, 7] or ("E" in x["settings"] and "refused these line settings" in x["error"]), x
    finally:
        emus.close()


def test_garbage_on_a_sensor_line_is_named_and_sniff_reads_the_agents_recorder(tmp_path: Path, mosquitto: Any) -> None:
    from hil_tests.emulators.serial_sensors import Sds011Emulator

    emu = Sds011Emulator(interval=0.2).start()
    sensors = f"""
[[buses]]
name = "ser-1"
type = "serial"
port = "{emu.port}"

[[devices]]
name = "dust-1"
driver = "sds011"
bus = "ser-1"
report_interval = 0
stale_after = 1.5
"""
    agent = AgentProcess(
        write_config(tmp_path, gateway_toml(tmp_path / "data", broker_port=mosquitto.port, devices=sensors, extra='[clock]\nsync_source = "assume"\n'))
    )
    try:
        agent.start()
        assert agent.wait_for(lambda: (f := _finding(agent, "dust-1")) and f["summary"].startswith("online"), 20), agent.log_text()
        emu.noise_probability = 1.0
        emu.corrupt_probability = 1.0  # garbage and broken frames only, as at a wrong baud rate
        f = agent.wait_for(lambda: (f := _finding(agent, "dust-1")) and f["level"] == "broken" and f, 20)
        # first the checksum errors, after stale_after "N broken frames and no good one"
        assert f and ("checksum" in f["summary"] or "broken frames" in f["summary"]), f
        assert "baud rate" in f["hint"] and "serial sniff" in f["hint"]
        r = agent.diag("serial", "sniff", "--device", "dust-1")
        assert "the agent holds" in r.stderr, r.stderr
        assert "chunks the agent read" in r.stdout and "sds011 checksum" in r.stdout
    finally:
        agent.stop()
        emu.stop()


def test_an_agent_without_diag_socket_still_keeps_diag_off_its_rs485_port(tmp_path: Path, mosquitto: Any) -> None:
    emus = Emulators()
    try:
        line = emus.start(PtyRtuEmulator([profile_device("xy_md02", 5)]))
        bus = f'[[buses]]\nname = "rtu-1"\ntype = "modbus_rtu"\nport = "{line.path}"\n'
        extra = "[diagnostics]\nenabled = false\n"
        agent = AgentProcess(write_config(tmp_path, gateway_toml(tmp_path / "data", broker_port=mosquitto.port, devices=bus + RTU_DEVICES, extra=extra)))
        agent.start()
        try:
            # wait until the agent has opened the port
            from agent.diag.ports import split_holders

            assert agent.wait_for(lambda: split_holders(line.path)[0], 15), agent.log_text()
            r = agent.diag("modbus", "read", "--bus", "rtu-1", "--unit", "5", "--address", "1", "--table", "input")
            assert r.returncode == 2
            assert "the agent holds" in r.stderr and "does not answer on its diag socket" in r.stderr and "systemctl stop edge-agent" in r.stderr
        finally:
            agent.stop()
    finally:
        emus.close()
