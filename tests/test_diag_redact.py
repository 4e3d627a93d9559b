"""Support bundles carry no secrets: config text, JSON and logs are scrubbed."""

from __future__ import annotations

from pathlib import Path

from agent.diag.redact import known_secrets, redact_config_text, redacted_config, scrub_known, scrub_obj, scrub_text

CONFIG = '''
[gateway]
id = "gw-1"
site = "north"

[uplink]
host = "hub.example.org"
username = "gw-1"
password = "inline-Pa55word"
password_file = "/etc/edge-agent/mqtt.pw"
api_token = 'tok_123456789'

[uplink.tls]
key_file = "/etc/edge-agent/client.key"
cert_file = "/etc/edge-agent/client.pem"

[[cameras]]
name = "cam-1"
source = "rtsp://admin:cam-Secret-1@10.0.0.5:554/stream"

[remote]
signing_secret = """
multi-line-secret-AAAA
multi-line-secret-BBBB
"""
inline_key = "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBg\\n-----END PRIVATE KEY-----"
'''


def test_config_secrets_are_redacted_and_the_rest_kept() -> None:
    out = redact_config_text(CONFIG)
    for secret in ("inline-Pa55word", "tok_123456789", "cam-Secret-1", "multi-line-secret", "MIIEvQIBADANBg"):
        assert secret not in out, secret
    assert 'host = "hub.example.org"' in out and 'username = "gw-1"' in out
    assert 'password_file = "/etc/edge-agent/mqtt.pw"' in out, "paths of secret files are kept, their contents never read"
    assert 'key_file = "/etc/edge-agent/client.key"' in out
    assert "rtsp://admin:<redacted>@10.0.0.5:554/stream" in out
    assert "[remote]" in out and 'signing_secret = "<redacted>"' in out


def test_secret_files_are_found_and_their_contents_scrubbed_everywhere(tmp_path: Path) -> None:
    pw = tmp_path / "mqtt.pw"
    pw.write_text("Zebra-Battery-77\n")
    key = tmp_path / "client.key"
    key.write_text("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkeyMaterialLine1\n-----END EC PRIVATE KEY-----\n")
    cfg = tmp_path / "gw.toml"
    cfg.write_text(f'[uplink]\npassword_file = "{pw}"\n[uplink.tls]\nkey_file = "{key}"\ncert_file = "{tmp_path / "c.pem"}"\n')
    text, files = redacted_config(str(cfg))
    assert sorted(files) == sorted([str(pw), str(key)]), "cert_file is not a secret"
    secrets = known_secrets(files)
    log = "connecting with Zebra-Battery-77 and MHcCAQEEIBkeyMaterialLine1"
    assert scrub_known(log, secrets) == "connecting with <redacted> and <redacted>"


def test_json_and_logs_are_scrubbed() -> None:
    obj = {"uplink": {"password": "p4ss", "token": "", "host": "h"}, "cameras": [{"source": "http://u:pw-Leak@cam/x"}], "n": 1}
    out = scrub_obj(obj)
    assert out["uplink"]["password"] == "<redacted>" and out["uplink"]["host"] == "h" and out["n"] == 1
    assert out["cameras"][0]["source"] == "http://u:<redacted>@cam/x"
    assert scrub_text("auth failed password=hunter22 for user x") == "auth failed password=<redacted> for user x"
    assert scrub_text("token: abc.def.ghi") == "token: <redacted>"
