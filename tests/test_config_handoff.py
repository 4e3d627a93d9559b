"""The agent's config arrives validated from a child process, as plain objects.

What an operator notices: the same config errors as `edge-agent config check`,
the same values in the running agent, and an agent that never carries the
validation library (its memory budget on a gateway is 40 MB).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.config.errors import ConfigError
from agent.config.handoff import load_plain
from agent.config.loader import load_config
from agent.config.plain import Plain, as_dict
from agent.vision.config import CameraConfig

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "config" / "demo.toml"


def test_plain_config_holds_the_validated_values() -> None:
    model = load_config(DEMO)
    plain = load_plain(str(DEMO))
    for section in ("gateway", "clock", "storage", "uplink", "diagnostics", "remote", "vision"):
        assert as_dict(getattr(plain, section)) == getattr(model, section).model_dump(), section
    assert [as_dict(d) for d in plain.devices] == [d.model_dump() for d in model.devices]
    assert [as_dict(c) for c in plain.cameras] == [c.model_dump() for c in model.cameras]


def test_modbus_devices_carry_their_resolved_points() -> None:
    model = load_config(DEMO)
    plain = load_plain(str(DEMO))
    meters = [(m, p) for m, p in zip(model.devices, plain.devices, strict=True) if m.driver == "modbus"]
    assert meters, "the demo config has Modbus devices"
    for m, p in meters:
        assert [(q.name, q.address, q.count, q.end, q.byte_order) for q in p.resolved_points] == [
            (q.name, q.address, q.count, q.end, q.byte_order) for q in m.resolved_points
        ]
        assert (p.resolved_max_gap, p.resolved_max_registers) == (m.resolved_max_gap, m.resolved_max_registers)


def test_camera_sections_validate_again_in_the_vision_worker() -> None:
    plain = load_plain(str(DEMO))
    assert plain.cameras
    for cam in plain.cameras:
        assert as_dict(CameraConfig.model_validate(as_dict(cam))) == as_dict(cam)


@pytest.mark.parametrize("broken", sorted(p.name for p in (ROOT / "config" / "broken").glob("*.toml")))
def test_errors_are_the_same_as_the_in_process_loader(broken: str) -> None:
    path = ROOT / "config" / "broken" / broken
    with pytest.raises(ConfigError) as in_process:
        load_config(path)
    with pytest.raises(ConfigError) as handed_over:
        load_plain(str(path))
    assert handed_over.value.render() == in_process.value.render()


def test_config_text_is_checked_like_a_file() -> None:
    with pytest.raises(ConfigError) as exc:
        load_plain(text='[gateway]\nid = "Bad Id"\nsite = "x"\n', name="<config update>")
    assert exc.value.render().startswith("config invalid: 1 error\n<config update>:2: gateway.id")


def test_plain_config_is_read_only() -> None:
    plain = load_plain(str(DEMO))
    with pytest.raises(AttributeError, match="read-only"):
        plain.gateway.id = "other"  # type: ignore[misc]
    assert isinstance(plain.gateway, Plain)


def test_the_process_that_loads_the_plain_config_never_imports_pydantic() -> None:
    code = (
        f"import sys; from agent.config.handoff import load_plain; load_plain({str(DEMO)!r}); print(sorted(m for m in sys.modules if m.startswith('pydantic')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
