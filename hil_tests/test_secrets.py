"""Secret hygiene of a real agent process: private key permissions, and planted secrets
never leaving the secret files (logs at debug level, status and health, command
results, support bundles sent to the hub, error messages)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.remote.hub_client import HubClient, command
from agent.uplink.config import TlsConfig
from hil_tests.agent_process import AgentProcess
from hil_tests.broker_certs import CertAuthority
from hil_tests.remote_rig import GATEWAY, SITE, config_text

PASSWORD = "PLANTED-mqtt-pw-5b8e1c"
TOKEN = "PLANTED-token-93af0d"


def _gateway_config(tmp_path: Path, port: int, ca: CertAuthority, key: Ed25519PrivateKey | None = None) -> tuple[Path, Path]:
    pair = ca.client_cert(GATEWAY)
    pw = tmp_path / "mqtt.password"
    pw.write_text(PASSWORD + "\n")
    pw.chmod(0o600)
    tls = f"""
username = "{GATEWAY}"
password_file = "{pw}"
[uplink.tls]
ca_file = "{ca.ca_file}"
cert_file = "{pair.cert}"
key_file = "{pair.key}"
"""
    text = config_text(tmp_path / "data", port, key=key).replace("health_interval = 3600", "health_interval = 1" + tls)
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(f"# hub api_token = {TOKEN}\n" + text)
    return cfg, pair.key


def listening_tcp_ports(pid: int) -> list[int]:
    """Ports the process listens on, from /proc (its socket inodes matched against the kernel's tables)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:  # 0A: LISTEN
                ports.append(int(f[1].rsplit(":", 1)[1], 16))
    return ports


def test_agent_refuses_to_start_with_a_private_key_others_can_read(tmp_path: Path, test_ca: CertAuthority) -> None:
    cfg, key_file = _gateway_config(tmp_path, 1, test_ca)
    key_file.chmod(0o644)
    proc = AgentProcess(cfg).run_to_exit()
    assert proc.returncode == 2
    assert f"uplink.tls.key_file {key_file} is readable or writable by other users (mode 0644)" in proc.stderr
    assert f"chmod 600 {key_file}" in proc.stderr, "the message says how to fix it"
    assert "BEGIN" not in proc.stderr and not (tmp_path / "data" / "outbox.db").exists()


def test_planted_secrets_appear_in_no_log_status_result_or_bundle(tmp_path: Path, mosquitto_factory, test_ca: CertAuthority) -> None:
    broker = mosquitto_factory(tls=True, require_certificate=True, passwords={GATEWAY: PASSWORD, "hub": "hub-pw-123456"})
    signer = Ed25519PrivateKey.generate()
    cfg, key_file = _gateway_config(tmp_path, broker.port, test_ca, signer)
    key_pem_lines = [line for line in key_file.read_text().splitlines() if line and not line.startswith("-----")]
    hub_pair = test_ca.client_cert("hub")
    hub = HubClient(
        tls=TlsConfig(ca_file=str(test_ca.ca_file), cert_file=str(hub_pair.cert), key_file=str(hub_pair.key)), username="hub", password="hub-pw-123456"
    )
    hub.start("127.0.0.1", broker.port)
    proc = AgentProcess(cfg, args=("--log-level", "debug")).start()
    try:
        assert hub.wait(lambda: any(t.endswith("/health") for t, _ in hub.messages), 30), proc.log_text()[-3000:]
        bundle = hub.result(hub.send(SITE, GATEWAY, command("bundle", GATEWAY)), timeout=60)
        assert bundle is not None and bundle["state"] == "done", bundle
        prefix = bundle["data"]["topic"] + "/"
        assert hub.wait(lambda: sum(t.startswith(prefix) for t, _ in hub.messages) >= bundle["data"]["chunks"], 20)
        # An invalid config update that names the secret: the error must not repeat it.
        bad = f'[gateway]\nid = "{GATEWAY}"\nsite = "lab"\n[uplink]\npassword = "{PASSWORD}"\n'
        failed = hub.result(hub.send(SITE, GATEWAY, command("config", GATEWAY, {"config": bad, "version": 5}), signer), timeout=30)
        assert failed is not None and failed["state"] == "failed" and "invalid" in failed["reason"], failed
        assert listening_tcp_ports(proc.proc.pid) == [], "no TCP port is opened on the gateway"
    finally:
        proc.stop()
        hub.stop()
    chunks = sorted((int(t.rsplit("/", 1)[1]), p) for t, p in hub.messages if t.startswith(prefix))
    texts = {"agent log": proc.log_text()}
    with tarfile.open(fileobj=io.BytesIO(b"".join(p for _, p in chunks))) as tar:
        for member in tar.getmembers():
            texts["bundle " + member.name] = tar.extractfile(member).read().decode(errors="replace")  # type: ignore[union-attr]
    assert any(name.endswith("config.toml") for name in texts), "the bundle carries the (redacted) config"
    for topic, payload in hub.messages:
        if not topic.startswith(prefix) and "/cmd/" not in topic:  # not what the hub itself sent
            texts[topic] = payload.decode(errors="replace")
    for root, _dirs, files in os.walk(tmp_path / "data"):
        for f in files:
            texts[f] = Path(root, f).read_bytes().decode(errors="replace")
    assert len(texts) > 8 and "DEBUG" in texts["agent log"]
    for secret in [PASSWORD, TOKEN, *key_pem_lines]:
        leaks = [where for where, text in texts.items() if secret in text]
        assert leaks == [], f"{secret[:12]}... leaked into {leaks}"
