"""Command envelopes and the replay window: pure logic over bytes and a state file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.config.errors import ConfigError
from agent.config.loader import load_config_text
from agent.remote.envelope import Refused, load_public_keys, parse, public_key_b64, sign
from agent.remote.hub_client import command
from agent.remote.replay import ReplayWindow

KEY = Ed25519PrivateKey.generate()
TRUSTED = load_public_keys([public_key_b64(KEY)])


def code(name: str, payload: bytes, gateway: str = "gw-1") -> str:
    with pytest.raises(Refused) as exc:
        parse(name, payload, gateway=gateway, trusted=TRUSTED)
    return exc.value.code


def test_signed_command_verifies_and_names_its_key() -> None:
    cmd = parse("config", sign(KEY, command("config", "gw-1", {"version": 3})), gateway="gw-1", trusted=TRUSTED)
    assert cmd.signed_by == 0 and cmd.args == {"version": 3}


def test_a_signature_binds_command_gateway_and_every_byte() -> None:
    msg = sign(KEY, command("config", "gw-1", {"version": 3}))
    assert code("model", msg) == "wrong_target"
    assert code("config", msg, gateway="gw-2") == "wrong_target"
    outer = json.loads(msg)
    outer["signed"] = outer["signed"].replace('"version":3', '"version":4')
    assert code("config", json.dumps(outer).encode()) == "bad_signature"
    assert code("config", sign(Ed25519PrivateKey.generate(), command("config", "gw-1"))) == "bad_signature"
    with pytest.raises(Refused, match="no \\[remote\\] trusted_keys"):
        parse("config", msg, gateway="gw-1", trusted=[])


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        b'{"id": "a b", "ts": 1, "nonce": "0123456789abcdef"}',
        b'{"id": "a", "ts": "now", "nonce": "0123456789abcdef"}',
        b'{"id": "a", "ts": 1, "nonce": "short"}',
    ],
)
def test_malformed_commands_are_refused_with_a_reason(payload: bytes) -> None:
    assert code("ping", payload) == "malformed"


def test_replay_window_refuses_repeats_across_restarts_and_stale_commands(tmp_path: Path) -> None:
    now = [1_000_000.0]
    path = str(tmp_path / "replay.json")
    w = ReplayWindow(path, max_skew=300, max_entries=100, now=lambda: now[0])
    w.check_and_remember("n" * 16, now[0])
    with pytest.raises(Refused, match="replay"):
        ReplayWindow(path, max_skew=300, max_entries=100, now=lambda: now[0]).check_and_remember("n" * 16, now[0])
    for ts in (now[0] - 301, now[0] + 301):
        with pytest.raises(Refused) as exc:
            w.check_and_remember("m" * 16, ts)
        assert exc.value.code == "expired"


def test_a_full_window_forgets_safely_by_raising_its_floor(tmp_path: Path) -> None:
    now = 1_000_000.0
    w = ReplayWindow(str(tmp_path / "r.json"), max_skew=300, max_entries=100, now=lambda: now)
    for i in range(150):
        w.check_and_remember(f"nonce-{i:010d}", now - 200 + i)
    assert len(w.seen) == 100
    with pytest.raises(Refused, match="replay"):
        w.check_and_remember("nonce-0000000001", now - 199)  # forgotten, but below the floor
    w.check_and_remember("a-fresh-nonce-000", now)


def test_trusted_keys_must_be_ed25519_public_keys() -> None:
    text = '[gateway]\nid = "gw"\nsite = "x"\n[remote]\ntrusted_keys = ["aGVsbG8="]\n'
    with pytest.raises(ConfigError) as exc:
        load_config_text(text, "g.toml")
    assert "not an Ed25519 public key" in exc.value.render()
    ok = load_config_text(text.replace("aGVsbG8=", public_key_b64(KEY)), "g.toml")
    assert ok.remote.trusted_keys == [public_key_b64(KEY)]
