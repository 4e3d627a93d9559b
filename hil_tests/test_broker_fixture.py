"""The broker fixtures work with the real paho-mqtt client the uplink uses."""

from __future__ import annotations

import queue
import ssl
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from hil_tests.broker import MosquittoBroker
from hil_tests.broker_certs import CertAuthority, CertPair

WAIT = 10.0  # upper bound for any single wait; never an assertion on speed


def _client(client_id: str) -> mqtt.Client:
    return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)


def _connect(client: mqtt.Client, broker: MosquittoBroker) -> None:
    connected: queue.Queue[object] = queue.Queue()
    client.on_connect = lambda c, u, flags, rc, props: connected.put(rc)
    client.connect(broker.host, broker.port, keepalive=30)
    client.loop_start()
    rc = connected.get(timeout=WAIT)
    assert not rc.is_failure, f"CONNACK refused: {rc}"


def _tls_attempt(broker: MosquittoBroker, ca_file: Path, pair: CertPair | None) -> str:
    """Try a TLS connection and drive it until CONNACK or failure.
    Returns "connected" or a description of how it was refused."""
    client = _client("tls-probe")
    outcome: list[str] = []
    client.on_connect = lambda c, u, f, rc, p: outcome.append("connected" if not rc.is_failure else f"connack {rc}")
    client.on_disconnect = lambda c, u, f, rc, p: outcome.append(f"disconnected {rc}")
    client.tls_set(
        ca_certs=str(ca_file),
        certfile=str(pair.cert) if pair else None,
        keyfile=str(pair.key) if pair else None,
    )
    try:
        client.connect(broker.host, broker.port, keepalive=30)
        deadline = time.monotonic() + WAIT
        while not outcome and time.monotonic() < deadline:
            rc = client.loop(timeout=0.1)
            if rc != mqtt.MQTT_ERR_SUCCESS:
                outcome.append(f"loop {rc}")
    except (ssl.SSLError, OSError) as exc:
        outcome.append(f"{type(exc).__name__}: {exc}")
    finally:
        client.disconnect()
        if client.socket():
            client.socket().close()
    assert outcome, "neither connected nor refused within the bound"
    return outcome[0]


def test_qos1_publish_is_received_through_the_plain_broker(mosquitto: MosquittoBroker) -> None:
    received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    subscribed: queue.Queue[object] = queue.Queue()
    sub = _client("sub")
    sub.on_message = lambda c, u, msg: received.put(msg)
    sub.on_subscribe = lambda c, u, mid, rcs, p: subscribed.put(rcs)
    pub = _client("pub")
    try:
        _connect(sub, mosquitto)
        sub.subscribe("gw/+/readings", qos=1)
        assert not subscribed.get(timeout=WAIT)[0].is_failure
        _connect(pub, mosquitto)
        info = pub.publish("gw/gw-1/readings", b"\x01\x02payload", qos=1)
        info.wait_for_publish(timeout=WAIT)
        assert info.is_published()  # PUBACK came back
        msg = received.get(timeout=WAIT)
        assert (msg.topic, msg.payload, msg.qos) == ("gw/gw-1/readings", b"\x01\x02payload", 1)
    finally:
        for c in (sub, pub):
            c.disconnect()
            c.loop_stop()
    assert "New client connected" in mosquitto.log_text()


def test_restart_keeps_the_port_and_clients_can_reconnect(mosquitto: MosquittoBroker) -> None:
    port = mosquitto.port
    first_pid = mosquitto.pid
    mosquitto.restart()
    assert mosquitto.port == port and mosquitto.pid != first_pid
    mosquitto.kill()
    assert not mosquitto.running
    with pytest.raises(OSError):
        _client("down").connect(mosquitto.host, port)
    mosquitto.start()
    assert mosquitto.port == port
    c = _client("after-outage")
    try:
        _connect(c, mosquitto)
    finally:
        c.disconnect()
        c.loop_stop()


def test_tls_with_a_client_certificate_connects(mosquitto_factory) -> None:
    broker = mosquitto_factory(tls=True, require_certificate=True, use_identity_as_username=True)
    assert broker.client_cert is not None and broker.ca_file is not None
    pair = CertPair(broker.client_cert, broker.client_key)
    assert _tls_attempt(broker, broker.ca_file, pair) == "connected"
    # use_identity_as_username: the broker knows the gateway by its certificate's CN.
    assert "u'gateway-test'" in broker.log_text()


def test_tls_refuses_expired_and_foreign_client_certificates(mosquitto_factory, test_ca: CertAuthority) -> None:
    broker = mosquitto_factory(tls=True, require_certificate=True)
    expired = test_ca.client_cert("gw-old", expired=True)
    foreign = test_ca.other_ca().client_cert("gw-rogue")
    assert _tls_attempt(broker, broker.ca_file, expired) != "connected"
    assert _tls_attempt(broker, broker.ca_file, foreign) != "connected"
    assert _tls_attempt(broker, broker.ca_file, None) != "connected"  # no cert at all
    assert broker.wait_for_log("certificate verify failed")
    assert broker.wait_for_log("peer did not return a certificate")
    # The broker still serves a good client afterwards.
    good = test_ca.client_cert("gw-ok")
    assert _tls_attempt(broker, broker.ca_file, good) == "connected"


def test_client_refuses_expired_or_foreign_server_certificates(mosquitto_factory, test_ca: CertAuthority) -> None:
    expired_server = mosquitto_factory(tls=True, server_cert=test_ca.server_cert(expired=True))
    assert "certificate has expired" in _tls_attempt(expired_server, test_ca.ca_file, None)
    rogue = test_ca.other_ca()
    foreign_server = mosquitto_factory(ca=rogue)
    assert "certificate verify failed" in _tls_attempt(foreign_server, test_ca.ca_file, None)


def test_password_file_and_acl_are_enforced(mosquitto_factory) -> None:
    broker = mosquitto_factory(passwords={"hub": "s3cret"}, acl="user hub\ntopic read gw/#\ntopic readwrite echo/#\n")
    bad = _client("bad")
    refused: queue.Queue[object] = queue.Queue()
    bad.on_connect = lambda c, u, f, rc, p: refused.put(rc)
    bad.username_pw_set("hub", "wrong")
    bad.connect(broker.host, broker.port)
    bad.loop_start()
    try:
        assert refused.get(timeout=WAIT).is_failure
    finally:
        bad.loop_stop()
    good = _client("good")
    good.username_pw_set("hub", "s3cret")
    received: queue.Queue[str] = queue.Queue()
    good.on_message = lambda c, u, msg: received.put(msg.topic)
    try:
        _connect(good, broker)
        acked: queue.Queue[object] = queue.Queue()
        good.on_subscribe = lambda c, u, mid, rcs, p: acked.put(rcs)
        good.subscribe([("gw/#", 1), ("echo/#", 1)])
        assert not any(rc.is_failure for rc in acked.get(timeout=WAIT))
        good.publish("gw/x", b"denied", qos=1).wait_for_publish(timeout=WAIT)
        good.publish("echo/y", b"allowed", qos=1).wait_for_publish(timeout=WAIT)
        # Delivery is in order, so had the denied publish gone through it would be first.
        assert received.get(timeout=WAIT) == "echo/y"
    finally:
        good.disconnect()
        good.loop_stop()


def test_persistence_keeps_retained_messages_across_a_restart(mosquitto_factory, tmp_path: Path) -> None:
    broker = mosquitto_factory(persistence_dir=tmp_path / "db")
    pub = _client("keeper")
    try:
        _connect(pub, broker)
        pub.publish("state/gw-1", b"online", qos=1, retain=True).wait_for_publish(timeout=WAIT)
    finally:
        pub.disconnect()
        pub.loop_stop()
    broker.restart()  # SIGTERM: Mosquitto writes its database on the way out
    got: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    sub = _client("reader")
    sub.on_message = lambda c, u, m: got.put(m)
    try:
        _connect(sub, broker)
        sub.subscribe("state/#", qos=1)
        msg = got.get(timeout=WAIT)
        assert (msg.topic, msg.payload, msg.retain) == ("state/gw-1", b"online", True)
    finally:
        sub.disconnect()
        sub.loop_stop()
