"""The README's demo: every configured device reaches the hub view; SIGTERM stops it cleanly."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from agent.config.loader import load_config
from hil_tests.broker import free_port

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "config" / "demo.toml"


def isolated_demo_config(tmp_path: Path) -> Path:
    """The shipped demo config with its own ports and directory, so the test
    never collides with a demo someone is running on the same machine."""
    text = DEMO.read_text()
    shipped = load_config(DEMO)
    text = text.replace(shipped.gateway.data_dir, str(tmp_path / "demo"))
    for port in [shipped.uplink.port] + [b.port for b in shipped.buses if b.type == "modbus_tcp"]:
        text = text.replace(f"port = {port}\n", f"port = {free_port()}\n")
    path = tmp_path / "demo.toml"
    path.write_text(text)
    return path


def test_demo_shows_every_device_at_the_hub_and_stops_on_sigterm(tmp_path: Path) -> None:
    cfg = isolated_demo_config(tmp_path)
    config = load_config(cfg)
    assert config.gateway.data_dir.startswith(str(tmp_path)) and config.uplink.port != load_config(DEMO).uplink.port
    expected = {d.name for d in config.devices} | {c.name for c in config.cameras}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent.cli.main", "demo", "--plain", "--config", str(cfg)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    seen: set[str] = set()
    lines: list[str] = []
    deadline = time.monotonic() + 150  # the first run renders the camera's street video
    try:
        assert proc.stdout is not None
        while seen != expected and time.monotonic() < deadline and proc.poll() is None:
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if not ready:
                continue
            line = proc.stdout.readline()
            lines.append(line)
            if line.startswith("hub <- "):
                seen.add(line.split()[2].split("/")[0])
        assert seen == expected, f"devices never seen at the hub: {expected - seen}\n{''.join(lines[-30:])}"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out[-3000:]
    assert "agent stopped (exit code 0)" in out
    assert "no gaps" in out
