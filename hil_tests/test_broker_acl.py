"""The shipped central-broker config (config/broker/) with a real Mosquitto and a test CA.

The broker runs the shipped mosquitto.conf with only its paths and port
rewritten for the test, and reads the shipped ACL file itself. Identities are
certificate CNs: "gw-1", "gw-2", "hub".

Absence is checked without timing: after the forbidden messages, the same
client sends an allowed one; MQTT keeps one client's messages in order, so
once the allowed one arrived, a forbidden one that got through would be there.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hil_tests.broker import MosquittoBroker
from hil_tests.broker_certs import CertAuthority

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "config" / "broker"


class ShippedBroker(MosquittoBroker):
    def _config_text(self) -> str:
        assert self.server is not None and self.ca_file is not None
        path_lines = {
            "listener": f"listener {self.port} {self.host}",
            "cafile": f"cafile {self.ca_file}",
            "certfile": f"certfile {self.server.cert}",
            "keyfile": f"keyfile {self.server.key}",
            "acl_file": f"acl_file {SHIPPED / 'acl'}",
            "persistence": "persistence false",
            "persistence_location": "",
            "log_dest": f"log_dest file {self.log_file}",
        }
        out = []
        for line in (SHIPPED / "mosquitto.conf").read_text().splitlines():
            key = line.split()[0] if line.strip() and not line.startswith("#") else ""
            out.append(path_lines.get(key, line))
        if os.geteuid() == 0:
            out.append("user root")  # mosquitto would drop to "mosquitto", which cannot read the test's files
        return "\n".join(out) + "\n"


class Client:
    def __init__(self, broker: MosquittoBroker, ca: CertAuthority, cn: str, client_id: str = "", *, expect_refusal: bool = False) -> None:
        pair = ca.client_cert(cn)
        self.got: list[tuple[str, bytes]] = []
        self.cond = threading.Condition()
        self.connected = threading.Event()
        self.ended = threading.Event()
        self.disconnects = 0
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or cn, protocol=mqtt.MQTTv5)
        self.c.tls_set(ca_certs=str(broker.ca_file), certfile=str(pair.cert), keyfile=str(pair.key))
        self.c.on_connect = lambda c, u, f, rc, p: (self.ended if rc.is_failure else self.connected).set()
        self.c.on_disconnect = self._gone
        self.c.on_message = self._msg
        try:
            self.c.connect(broker.host, broker.port)
        except OSError:
            self.ended.set()
            return
        self.c.loop_start()
        if not expect_refusal:
            assert self.connected.wait(10), f"{cn} could not connect"

    def _gone(self, *args: object) -> None:
        self.disconnects += 1
        self.connected.clear()
        self.ended.set()

    def _msg(self, c: object, u: object, m: mqtt.MQTTMessage) -> None:
        with self.cond:
            self.got.append((m.topic, bytes(m.payload)))
            self.cond.notify_all()

    def subscribe(self, topic: str) -> None:
        done = threading.Event()
        self.c.on_subscribe = lambda *a: done.set()
        self.c.subscribe(topic, qos=1)
        assert done.wait(10)

    def publish(self, topic: str, payload: bytes) -> None:
        self.c.publish(topic, payload, qos=1).wait_for_publish(10)

    def wait_for(self, payload: bytes, timeout: float = 10) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: any(p == payload for _, p in self.got), timeout)

    def topics(self) -> set[str]:
        with self.cond:
            return {t for t, _ in self.got}

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def broker(tmp_path: Path, test_ca: CertAuthority):
    b = ShippedBroker(tmp_path / "broker", ca=test_ca)
    b.start()
    yield b
    b.stop()


def test_a_gateway_certificate_reaches_only_its_own_topics(broker: MosquittoBroker, test_ca: CertAuthority) -> None:
    hub = Client(broker, test_ca, "hub")
    gw1 = Client(broker, test_ca, "gw-1")
    gw2 = Client(broker, test_ca, "gw-2")
    clients = [hub, gw1, gw2]
    try:
        hub.subscribe("city/#")
        gw1.subscribe("city/lab/gw-1/cmd/#")
        gw2.subscribe("city/#")  # as greedy as it likes: the broker filters by identity

        gw1.publish("city/lab/gw-1/telemetry/meter", b"own")
        assert hub.wait_for(b"own"), "control: a gateway publishes under its own id"

        for topic in ("city/lab/gw-1/telemetry/meter", "city/lab/gw-1/status", "city/lab/gw-1/result", "city/lab/gw-1/cmd/config", "city/lab/gw-3/events"):
            gw2.publish(topic, b"forged")
        gw1.publish("city/lab/gw-1/cmd/restart", b"self-command")
        gw2.publish("city/lab/gw-2/events", b"gw2-sentinel")
        gw1.publish("city/lab/gw-1/events", b"gw1-sentinel")
        assert hub.wait_for(b"gw2-sentinel") and hub.wait_for(b"gw1-sentinel")
        forged = [t for t, p in hub.got if p in (b"forged", b"self-command")]
        assert forged == [], f"the broker let these through: {forged}"

        hub.publish("city/lab/gw-1/cmd/ping", b"for-gw-1")
        hub.publish("city/lab/gw-2/cmd/ping", b"for-gw-2")
        assert gw1.wait_for(b"for-gw-1"), "control: a gateway receives its own commands"
        assert gw2.wait_for(b"for-gw-2")
        assert gw2.topics() <= {"city/lab/gw-2/cmd/ping"}, f"gw-2 read another gateway's topics: {gw2.topics()}"
    finally:
        for c in clients:
            c.close()


def test_a_chosen_client_id_neither_grants_rights_nor_takes_over_a_session(broker: MosquittoBroker, test_ca: CertAuthority) -> None:
    hub = Client(broker, test_ca, "hub")
    gw1 = Client(broker, test_ca, "gw-1")
    impostor = Client(broker, test_ca, "gw-2", client_id="gw-1")
    try:
        hub.subscribe("city/#")
        impostor.publish("city/lab/gw-1/telemetry/meter", b"forged")
        impostor.publish("city/lab/gw-2/events", b"sentinel")
        assert hub.wait_for(b"sentinel")
        assert not any(p == b"forged" for _, p in hub.got)
        gw1.publish("city/lab/gw-1/events", b"still-here")
        assert hub.wait_for(b"still-here")
        assert gw1.disconnects == 0, "the impostor's client id must not take over gw-1's session"
    finally:
        for c in (hub, gw1, impostor):
            c.close()


def test_a_client_without_a_certificate_from_the_city_ca_is_refused(broker: MosquittoBroker, test_ca: CertAuthority) -> None:
    rogue = Client(broker, test_ca.other_ca(), "gw-1", expect_refusal=True)
    try:
        assert rogue.ended.wait(10), "the broker must end a session with a foreign certificate"
        assert not rogue.connected.is_set()
    finally:
        rogue.close()
