"""`diag mqtt check` step by step against real Mosquitto brokers (TLS test CA from hil_tests/broker.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.diag.client import DiagClient
from hil_tests.agent_process import AgentProcess, diag
from hil_tests.diag_env import gateway_toml


def _config(tmp_path: Path, port: int, *, ca: Any = None, user: str = "", password: str = "", host: str = "127.0.0.1", extra: str = "") -> Path:
    tls = f'[uplink.tls]\nca_file = "{ca}"\n' if ca else ""
    text = gateway_toml(tmp_path / "data", broker_port=port, tls=tls, extra=extra).replace('host = "127.0.0.1"', f'host = "{host}"')
    if user:
        (tmp_path / "pw").write_text(password + "\n")
        text = text.replace("[uplink]\n", f'[uplink]\nusername = "{user}"\npassword_file = "{tmp_path / "pw"}"\n')
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(text)
    return cfg


def check(cfg: Path) -> tuple[int, dict[str, Any], str]:
    r = diag("mqtt", "check", "--config", str(cfg), "--json", "--timeout", "5")
    human = diag("mqtt", "check", "--config", str(cfg), "--timeout", "5")
    return r.returncode, json.loads(r.stdout), human.stdout


def test_tls_with_password_passes_every_step_and_shows_the_certificate(tmp_path: Path, mosquitto_factory: Any, test_ca: Any) -> None:
    broker = mosquitto_factory(tls=True, passwords={"gw-diag": "s3cret-pw"})
    code, res, human = check(_config(tmp_path, broker.port, ca=test_ca.ca_file, user="gw-diag", password="s3cret-pw"))
    assert code == 0, res
    assert [s["step"] for s in res["steps"]] == ["files", "dns", "tcp", "tls", "auth", "publish"] and all(s["ok"] for s in res["steps"])
    cert = next(s for s in res["steps"] if s["step"] == "tls")["facts"]["broker_certificate"]
    assert "localhost" in cert["subject"] and "edge-gateway test CA" in cert["issuer"] and 25 < cert["days_left"] < 31
    assert all(s["ms"] >= 0 for s in res["steps"])
    assert "the uplink works end to end" in human and "expires in" in human


def test_wrong_password_fails_at_auth(tmp_path: Path, mosquitto_factory: Any) -> None:
    broker = mosquitto_factory(passwords={"gw-diag": "right-pw"})
    code, res, human = check(_config(tmp_path, broker.port, user="gw-diag", password="wrong-pw"))
    assert code == 2 and res["failed_step"] == "auth"
    assert "password" in res["steps"][-1]["hint"]
    assert "first failing step: auth" in human


def test_expired_broker_certificate_is_named_with_its_date(tmp_path: Path, mosquitto_factory: Any, test_ca: Any) -> None:
    broker = mosquitto_factory(tls=True, server_cert=test_ca.server_cert(expired=True))
    code, res, _ = check(_config(tmp_path, broker.port, ca=test_ca.ca_file))
    assert code == 2 and res["failed_step"] == "tls"
    tls = res["steps"][-1]
    assert "expired" in tls["detail"] and "renew" in tls["hint"]
    assert tls["facts"]["broker_certificate"]["days_left"] < 0


def test_certificate_from_another_ca_is_named(tmp_path: Path, mosquitto_factory: Any, test_ca: Any) -> None:
    rogue = test_ca.other_ca()
    broker = mosquitto_factory(tls=True, ca=rogue)
    code, res, _ = check(_config(tmp_path, broker.port, ca=test_ca.ca_file))
    assert code == 2 and res["failed_step"] == "tls"
    assert "ca_file" in res["steps"][-1]["hint"] and "rogue test CA" in res["steps"][-1]["hint"]


def test_unknown_host_fails_at_dns(tmp_path: Path, monkeypatch: Any) -> None:
    import socket

    from agent.config.loader import load_config
    from agent.diag.mqtt_check import Checker

    # The resolver answers as it does for a name nobody knows, without a
    # query leaving the machine (tests stay on loopback).
    def no_such_host(host: str, *args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    config = load_config(_config(tmp_path, 8883, host="no-such-broker.invalid"))
    steps = Checker(config, "no-such-broker.invalid", 8883, timeout=5).run()
    assert [s["step"] for s in steps][-1] == "dns" and not steps[-1]["ok"]
    assert "no-such-broker.invalid" in steps[-1]["detail"] and steps[-1]["hint"]


def test_status_of_a_running_agent_names_the_expired_certificate(tmp_path: Path, mosquitto_factory: Any, test_ca: Any) -> None:
    broker = mosquitto_factory(tls=True, server_cert=test_ca.server_cert(expired=True))
    agent = AgentProcess(_config(tmp_path, broker.port, ca=test_ca.ca_file, extra='[clock]\nsync_source = "assume"\n'))
    try:
        agent.start()

        def uplink_finding() -> Any:
            with DiagClient(str(agent.diag_socket)) as c:
                st = c.call("status")
            f = next((f for f in st["findings"] if f["subject"] == "uplink"), None)
            return f if f and "expired" in f["summary"] else None

        f = agent.wait_for(uplink_finding, 20)
        assert f and f["level"] == "broken" and "mqtt check" in f["hint"], agent.log_text()
        r = agent.diag("status")
        assert r.returncode == 2 and "certificate has expired" in r.stdout
    finally:
        agent.stop()
