"""The long-running agent stays small: what it imports must not drag in the
config validation library or the vision stack (they live in the validator
and the vision worker processes). A regression here costs 10-35 MB of a
gateway's 40 MB budget for the agent, silently."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# every module the agent process loads in some configuration: runtime, all
# drivers and buses, the vision supervisor side, diagnostics, remote management
RUNTIME_MODULES = [
    "agent.cli.run",
    "agent.runtime.app",
    "agent.outbox",
    "agent.uplink",
    "agent.broker.server",
    "agent.diag.server",
    "agent.diag.handlers_io",
    "agent.remote.manager",
    "agent.remote.config_update",
    "agent.remote.model_update",
    "agent.vision.supervisor",
    "agent.vision.handle",
    "agent.vision.report",
    "drivers.modbus.driver",
    "drivers.modbus.bus",
    "drivers.serial.particulate",
    "drivers.serial.nmea_gps",
    "drivers.serial.ultrasonic_bin",
    "drivers.system.health",
]
HEAVY = ("pydantic", "numpy", "cv2", "onnxruntime")


def test_runtime_modules_import_neither_the_validator_nor_the_vision_stack() -> None:
    code = (
        "import importlib, sys\n"
        f"for m in {RUNTIME_MODULES!r}: importlib.import_module(m)\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout
