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

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "config" / "demo.toml"


def test_demo_shows_every_device_at_the_hub_and_stops_on_sigterm() -> None:
    config = load_config(DEMO)
    expected = {d.name for d in config.devices} | {c.name for c in config.cameras}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent.cli.main", "demo", "--plain"],
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
