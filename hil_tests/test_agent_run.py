"""`edge-agent run` as systemd runs it: real process, real Mosquitto, real hub consumer."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from agent.hub.listener import HubListener
from agent.hub.store import HubStore
from agent.uplink.paho_adapter import Subscriber
from hil_tests.agent_process import AgentProcess
from hil_tests.broker import MosquittoBroker


def write_config(tmp_path: Path, port: int, *, extra: str = "") -> Path:
    cfg, data = tmp_path / "gateway.toml", tmp_path / "data"
    cfg.write_text(
        f"""
[gateway]
id = "gw-run-test"
site = "lab"
data_dir = "{data}"
log_level = "info"

[clock]
sync_source = "assume"

[uplink]
broker = "external"
host = "127.0.0.1"
port = {port}

[[devices]]
name = "gateway"
driver = "system"
poll_interval = 0.2
{extra}
"""
    )
    return cfg


def hub(tmp_path: Path, broker: MosquittoBroker) -> tuple[HubListener, Subscriber]:
    import logging

    listener = HubListener(HubStore(str(tmp_path / "hub.db")))
    sub = Subscriber(client_id="test-hub", topics=listener.topics, on_message=listener.handle, log=logging.getLogger("test.hub"))
    sub.start("127.0.0.1", broker.port)
    return listener, sub


def received(listener: HubListener) -> int:
    return listener.store.summary()["gateways"].get("gw-run-test", {}).get("readings", 0)


def stop(agent: AgentProcess, sig: signal.Signals = signal.SIGTERM) -> str:
    """Signal the agent and return its output; it must exit 0 within 10 s."""
    code = agent.stop(10, sig)
    out = agent.log_text()
    assert code == 0, out
    return out


def test_agent_delivers_readings_and_stops_cleanly_on_sigterm(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    listener, sub = hub(tmp_path, mosquitto)
    agent = AgentProcess(write_config(tmp_path, mosquitto.port), env={"WATCHDOG_USEC": "2000000", "JOURNAL_STREAM": "8:1"})
    try:
        agent.start(keep_notify=True)  # returns on READY=1
        assert agent.notifications[0].startswith(b"READY=1"), "the agent must tell systemd it is ready"
        assert listener.wait_for(lambda: received(listener) >= 20, 30)
        assert agent.next_notification(20) == b"WATCHDOG=1", "the watchdog is fed from the event loop"
        out = stop(agent)
    finally:
        agent.kill()
        sub.stop()
    assert "<6>edge_agent: stopping" in out, "under journald each line carries its priority"
    gw = listener.store.summary()["gateways"]["gw-run-test"]
    assert gw["first_seq"] == 1 and not gw["unexplained_gaps"]
    with listener.store.lock:
        rows = listener.store.conn.execute("SELECT DISTINCT metric, unit FROM readings WHERE device='gateway'").fetchall()
    assert {("memory_available", "By"), ("disk_free", "By"), ("uptime", "s")} <= set(rows)


def test_invalid_config_never_starts_the_agent(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[gateway]\nid = "gw"\nsite = "x"\n[[devices]]\nname = "m"\ndriver = "modbus"\nbus = "rs485-9"\nprofile = "eastron_sdm120"\n')
    proc = AgentProcess(cfg).run_to_exit()
    assert proc.returncode == 2
    assert "bad.toml:7: devices[0](m).bus = 'rs485-9'" in proc.stderr
    assert "not defined in [[buses]]" in proc.stderr
    assert not (tmp_path / "data").exists()


def test_readings_made_while_broker_is_down_arrive_after_it_returns(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    listener, sub = hub(tmp_path, mosquitto)
    agent = AgentProcess(write_config(tmp_path, mosquitto.port))
    try:
        agent.start()
        assert listener.wait_for(lambda: received(listener) >= 10, 30)
        mosquitto.stop()
        time.sleep(2)  # the agent keeps polling into its outbox meanwhile
        mosquitto.start()
        sub.stop()
        listener2, sub = hub(tmp_path, mosquitto)
        assert listener2.wait_for(lambda: received(listener2) >= 10, 30)
        stop(agent)
    finally:
        agent.kill()
        sub.stop()
    gw = listener2.store.summary()["gateways"]["gw-run-test"]
    assert gw["first_seq"] == 1 and not gw["unexplained_gaps"], gw


def test_ctrl_c_stops_the_agent_cleanly_too(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    listener, sub = hub(tmp_path, mosquitto)
    agent = AgentProcess(write_config(tmp_path, mosquitto.port))
    try:
        agent.start()
        assert listener.wait_for(lambda: received(listener) >= 5, 30)
        out = stop(agent, signal.SIGINT)
    finally:
        agent.kill()
        sub.stop()
    assert "Traceback" not in out and "stopped in" in out


def test_a_second_agent_on_the_same_data_dir_is_refused(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    cfg = write_config(tmp_path, mosquitto.port)
    first = AgentProcess(cfg)
    try:
        first.start()  # ready: it holds the data dir's lock
        second = AgentProcess(cfg, log_file=tmp_path / "second.log").run_to_exit()
        assert second.returncode == 1
        assert f"another edge-agent (pid {first.pid}) is running" in second.stderr and "Traceback" not in second.stderr
        assert first.proc is not None and first.proc.poll() is None, "the running agent is not disturbed"
    finally:
        stop(first)


def test_running_agent_does_not_carry_the_config_validation_library(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    """pydantic and the config models (about 20 MB) stay in the short-lived
    validator process; the gateway's memory budget for the agent is 40 MB."""
    listener, sub = hub(tmp_path, mosquitto)
    agent = AgentProcess(write_config(tmp_path, mosquitto.port))
    try:
        agent.start()
        assert listener.wait_for(lambda: received(listener) >= 5, 30)
        maps = Path(f"/proc/{agent.pid}/maps").read_text()
        stop(agent)
    finally:
        agent.kill()
        sub.stop()
    assert "pydantic" not in maps, "the running agent loaded pydantic: a runtime module imports a config model"
