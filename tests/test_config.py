"""The installer's view of config validation: `edge-agent config check`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config.errors import ConfigError
from agent.config.loader import load_config, load_config_text
from agent.config.schema import json_schema

ROOT = Path(__file__).resolve().parents[1]
BROKEN = sorted((ROOT / "config" / "broken").glob("*.toml"))
EXAMPLES = sorted((ROOT / "config").glob("*.toml"))


def check(*files: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli.main", "config", "check", *map(str, files)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_shipped_examples_are_valid() -> None:
    assert EXAMPLES, "config/*.toml examples are missing"
    result = check(*EXAMPLES)
    assert result.returncode == 0, result.stderr
    for example in EXAMPLES:
        assert f"{example}: ok" in result.stdout


@pytest.mark.parametrize("path", BROKEN, ids=[p.name for p in BROKEN])
def test_broken_config_is_refused_with_its_place_named(path: Path) -> None:
    expected = [line.split("expect:", 1)[1].strip() for line in path.read_text().splitlines() if line.startswith("# expect:")]
    assert expected, f"{path.name} has no '# expect:' lines"
    result = check(path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in result.stderr, f"{text!r} not in:\n{result.stderr}"
    # one screen: an installer reads it on a laptop at the cabinet
    assert len(result.stderr.splitlines()) <= 40


def test_missing_file_names_it_and_exits_2(tmp_path: Path) -> None:
    result = check(tmp_path / "nope.toml")
    assert result.returncode == 2
    assert "nope.toml" in result.stderr and "file not found" in result.stderr


def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "secret.toml"
    path.write_text('[gateway]\nid = "a"\nsite = "b"\n')
    path.chmod(0)
    tmp_path.chmod(0o755)
    # root reads any file, so as root the check runs with nobody's effective
    # uid, after the imports (the interpreter itself may live under /root)
    drop = "os.setegid(65534); os.seteuid(65534);" if os.geteuid() == 0 else ""
    code = (
        f"import os,sys; sys.path.insert(0, {str(ROOT)!r}); from agent.cli.main import main; import agent.cli.config_cmd, agent.config.loader;"
        f"{drop} sys.exit(main(['config','check',{str(path)!r}]))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "permission denied" in result.stderr


def test_every_error_is_reported_at_once() -> None:
    text = '[gateway]\nid = "gw"\nsite = "x"\n[storage]\nmax_byte = 1\n[uplink]\nkeepalive = "x"\n'
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "multi.toml")
    paths = [i.path for i in info.value.issues]
    assert paths == ["storage.max_byte", "uplink.keepalive"]
    assert [i.line for i in info.value.issues] == [5, 7]


def test_json_output_for_scripts(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agent.cli.main", "config", "check", "--json", str(ROOT / "config" / "broken" / "unknown_key.toml")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 2
    [entry] = json.loads(result.stdout)
    assert entry["valid"] is False
    assert entry["errors"][0]["path"] == "storage.max_byte" and entry["errors"][0]["line"] == 9


def test_schema_json_is_in_sync() -> None:
    committed = json.loads((ROOT / "config" / "schema.json").read_text())
    assert committed == json.loads(json.dumps(json_schema())), "config/schema.json is stale: run `edge-agent config schema > config/schema.json`"


def test_loaded_example_has_defaults_filled() -> None:
    cfg = load_config(ROOT / "config" / "gateway.example.toml")
    assert cfg.storage.sync_interval > 0 and cfg.storage.commit_interval <= 0.1


def _schema_keys(schema: dict) -> set[str]:
    defs = schema.get("$defs", {})
    keys: set[str] = set()

    def walk(node: dict, seen: frozenset[str]) -> None:
        if "$ref" in node:
            name = node["$ref"].split("/")[-1]
            if name not in seen:
                walk(defs[name], seen | {name})
            return
        for combo in ("anyOf", "oneOf", "allOf"):
            for sub in node.get(combo, []):
                walk(sub, seen)
        if isinstance(node.get("items"), dict):
            walk(node["items"], seen)
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], seen)
        for prop, sub in node.get("properties", {}).items():
            keys.add(prop)
            walk(sub, seen)

    walk(schema, frozenset())
    return keys


def test_example_config_documents_every_option() -> None:
    import re

    text = (ROOT / "config" / "gateway.example.toml").read_text()
    present = set(re.findall(r"^\s*#?\s*([A-Za-z0-9_]+)\s*=", text, re.M))
    for header in re.findall(r"^\s*\[\[?\s*([A-Za-z0-9_.]+)\s*\]", text, re.M):
        present.update(header.split("."))
    missing = sorted(_schema_keys(json_schema()) - present)
    assert not missing, f"config/gateway.example.toml does not show: {', '.join(missing)}"
