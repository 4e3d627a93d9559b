"""`diag camera snapshot` / `reference` and camera facts in `diag status`, with a rendered street clip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import pytest

from agent.diag.client import DiagClient
from hil_tests.agent_process import AgentProcess, write_config
from hil_tests.diag_env import gateway_toml
from hil_tests.emulators.scenes import StreetScene


@pytest.fixture
def camera_agent(tmp_path: Path, mosquitto: Any) -> Any:
    clip = tmp_path / "street.avi"
    StreetScene.random(seed=3, duration_s=6, fps=10, size=(320, 180), per_lane_per_min=30).write_video(str(clip))
    extra = f"""[clock]
sync_source = "assume"

[[cameras]]
name = "cam-1"
source = "{clip}"
loop = true
mode = "motion"
detect_fps = 5

[[cameras.lines]]
name = "kerb"
start = [0.5, 0.0]
end = [0.5, 1.0]

[[cameras.bins]]
name = "bin-a"
region = [0.05, 0.05, 0.25, 0.3]
"""
    agent = AgentProcess(write_config(tmp_path, gateway_toml(tmp_path / "data", broker_port=mosquitto.port, extra=extra)))
    agent.start()
    try:
        yield agent
    finally:
        agent.stop()


def test_snapshot_reference_and_camera_status(camera_agent: AgentProcess, tmp_path: Path) -> None:
    agent = camera_agent

    def analysing() -> Any:
        with DiagClient(str(agent.diag_socket)) as c:
            cam = c.call("status")["cameras"].get("cam-1", {})
        return cam if cam.get("frames_analysed", 0) >= 3 else None

    assert agent.wait_for(analysing, 30), agent.log_text()
    out = tmp_path / "aim.jpg"
    r = agent.diag("camera", "snapshot", "cam-1", "--output", str(out))
    assert r.returncode == 0, r.stderr
    img = cv2.imread(str(out))
    assert img is not None and img.shape[:2] == (180, 320), "the JPEG on the laptop side is the camera's frame"
    assert "detections boxed" in r.stdout

    st = json.loads(agent.diag("status", "--json").stdout)
    cam = next(f for f in st["findings"] if f["subject"] == "cam-1")
    assert "fps" in cam["summary"] and "model motion" in cam["summary"]
    # the bin has no reference images yet: named, with the command that records them
    assert cam["level"] == "degraded" and "bin bin-a" in cam["summary"]
    assert "diag camera reference cam-1 bin-a empty" in cam["hint"]

    ref = agent.diag("camera", "reference", "cam-1", "bin-a", "empty", "--json")
    saved = json.loads(ref.stdout)["saved"]
    assert ref.returncode == 0 and Path(saved).exists() and saved.endswith("bin-a_empty.png")

    missing = agent.diag("camera", "snapshot", "cam-9")
    assert missing.returncode == 2 and "known cameras: cam-1" in missing.stderr
