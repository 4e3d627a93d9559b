"""The embedded broker serves real paho-mqtt 2.x clients over MQTT 3.1.1 and 5."""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import random
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.broker import EmbeddedBroker

WAIT = 10.0  # bound for one wait; tests never assert on how long anything took
V311, V5 = mqtt.MQTTv311, mqtt.MQTTv5
BOTH = pytest.mark.parametrize("proto", [V311, V5], ids=["mqtt311", "mqtt5"])
REPO = Path(__file__).resolve().parents[1]


class BrokerThread:
    """The broker in its own event loop thread, as paho clients are threaded."""

    def __init__(self, **options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.broker = EmbeddedBroker(**options)
        self.port = self.call(self.broker.start())

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(WAIT)

    def close(self) -> None:
        try:
            self.call(self.broker.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(WAIT)
            self.loop.close()


@pytest.fixture
def broker() -> Iterator[BrokerThread]:
    bt = BrokerThread()
    yield bt
    bt.close()


class Client:
    """A paho client that records what it receives; every wait is bounded."""

    def __init__(self, port: int, proto: int, client_id: str = "") -> None:
        self.port = port
        self.proto = proto
        self.paho = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                protocol=proto)
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.acks: queue.Queue[Any] = queue.Queue()
        self.disconnects: queue.Queue[Any] = queue.Queue()
        self.connack: Any | None = None
        self.paho.on_message = lambda c, u, m: self.messages.put(m)
        self.paho.on_subscribe = lambda c, u, mid, rcs, p: self.acks.put(rcs)
        self.paho.on_unsubscribe = lambda c, u, mid, rcs, p: self.acks.put(rcs)
        self.paho.on_disconnect = lambda c, u, f, rc, p: self.disconnects.put(rc)

    def connect(self, keepalive: int = 30) -> Client:
        done: queue.Queue[Any] = queue.Queue()
        self.paho.on_connect = lambda c, u, f, rc, p: done.put((rc, p))
        self.paho.connect("127.0.0.1", self.port, keepalive=keepalive)
        self.paho.loop_start()
        rc, props = done.get(timeout=WAIT)
        assert not rc.is_failure, rc
        self.connack = props
        return self

    def subscribe(self, topic: str, qos: int = 1) -> list:
        self.paho.subscribe(topic, qos)
        return self.acks.get(timeout=WAIT)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        info = self.paho.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout=WAIT)
        assert info.is_published()

    def next(self) -> mqtt.MQTTMessage:
        return self.messages.get(timeout=WAIT)

    def close(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()


@pytest.fixture
def clients(broker: BrokerThread) -> Iterator[Any]:
    made: list[Client] = []

    def make(proto: int = V311, client_id: str = "", connect: bool = True,
             inflight: int = 20) -> Client:
        c = Client(broker.port, proto, client_id)
        c.paho.max_inflight_messages_set(inflight)
        made.append(c)
        return c.connect() if connect else c

    yield make
    for c in made:
        c.close()


@BOTH
def test_publish_subscribe_qos0_and_qos1(clients: Any, proto: int) -> None:
    sub = clients(proto)
    assert [rc.value for rc in sub.subscribe("site/+/temp", qos=1)] == [1]
    pub = clients(proto)
    pub.publish("site/a/temp", b"21.5", qos=0)
    pub.publish("site/b/temp", b"\x00\xffbinary", qos=1)
    first, second = sub.next(), sub.next()
    assert (first.topic, first.payload, first.qos) == ("site/a/temp", b"21.5", 0)
    assert (second.topic, second.payload, second.qos) == ("site/b/temp", b"\x00\xffbinary", 1)


def test_mqtt31_clients_are_served_too(clients: Any) -> None:
    sub = clients(mqtt.MQTTv31, client_id="old-31")
    sub.subscribe("legacy")
    clients(mqtt.MQTTv31, client_id="old-31-pub").publish("legacy", b"3.1")
    assert sub.next().payload == b"3.1"


def test_mqtt5_assigns_client_id_and_grants_qos2_as_qos1(clients: Any) -> None:
    sub = clients(V5)
    assert sub.connack.AssignedClientIdentifier.startswith("auto-")
    assert sub.connack.MaximumPacketSize == 4 * 1024 * 1024
    assert [rc.value for rc in sub.subscribe("q2/#", qos=2)] == [1]
    pub = clients(V5)
    pub.publish("q2/x", b"exactly-once-in", qos=2)  # PUBREC/PUBREL/PUBCOMP completes
    msg = sub.next()
    assert (msg.payload, msg.qos) == (b"exactly-once-in", 1)


def test_qos2_retransmission_before_pubrel_is_delivered_once(
    broker: BrokerThread, clients: Any
) -> None:
    sub = clients(V311)
    sub.subscribe("q2")
    raw = socket.create_connection(("127.0.0.1", broker.port), timeout=WAIT)
    raw.sendall(connect_packet(b"qos2-raw"))
    assert raw.recv(4) == b"\x20\x02\x00\x00"
    publish = b"\x00\x02q2" + b"\x00\x05" + b"once"
    raw.sendall(bytes((0x34, len(publish))) + publish)  # QoS 2, packet id 5
    assert recv_exactly(raw, 4) == b"\x50\x02\x00\x05"  # PUBREC
    raw.sendall(bytes((0x3C, len(publish))) + publish)  # same id again, DUP set
    assert recv_exactly(raw, 4) == b"\x50\x02\x00\x05"
    raw.sendall(b"\x62\x02\x00\x05")  # PUBREL
    assert recv_exactly(raw, 4) == b"\x70\x02\x00\x05"  # PUBCOMP
    raw.sendall(b"\x30\x07\x00\x02q2end")  # QoS 0 marker
    assert [sub.next().payload, sub.next().payload] == [b"once", b"end"]
    raw.close()


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def test_mqtt5_user_properties_reach_v5_subscribers(clients: Any) -> None:
    sub = clients(V5)
    sub.subscribe("props")
    pub = clients(V5)
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("unit", "Cel")]
    props.ContentType = "application/json"
    pub.paho.publish("props", b"{}", qos=1, properties=props).wait_for_publish(WAIT)
    msg = sub.next()
    assert msg.properties.UserProperty == [("unit", "Cel")]
    assert msg.properties.ContentType == "application/json"
    old = clients(V311)
    old.subscribe("props")
    pub.paho.publish("props", b"{}", qos=1, properties=props).wait_for_publish(WAIT)
    assert old.next().payload == b"{}"  # a 3.1.1 subscriber gets it without properties


@BOTH
def test_wildcards_and_dollar_topics(clients: Any, proto: int) -> None:
    everything = clients(proto)
    everything.subscribe("#")
    sys_only = clients(proto)
    sys_only.subscribe("$SYS/#")
    single = clients(proto)
    single.subscribe("+/+/power")
    pub = clients(proto)
    pub.publish("$SYS/broker/uptime", b"1")
    pub.publish("gw/meter1/power", b"2")
    pub.publish("gw/meter1/deep/power", b"3")
    # In-order delivery: "#" skipping the $SYS message means the first thing it sees is "2".
    assert [everything.next().payload for _ in range(2)] == [b"2", b"3"]
    assert sys_only.next().payload == b"1"
    assert single.next().payload == b"2"
    pub.publish("gw/meter2/power", b"4")
    assert single.next().payload == b"4"  # "deep/power" was not matched by +/+/power


@BOTH
def test_unsubscribe_stops_delivery(clients: Any, proto: int) -> None:
    sub = clients(proto)
    sub.subscribe("a")
    sub.subscribe("b")
    sub.paho.unsubscribe("a")
    sub.acks.get(timeout=WAIT)
    pub = clients(proto)
    pub.publish("a", b"gone")
    pub.publish("b", b"still")
    assert sub.next().payload == b"still"


@BOTH
def test_retained_messages_and_empty_payload_clears(clients: Any, proto: int) -> None:
    pub = clients(proto)
    pub.publish("r/status", b"online", retain=True)
    pub.publish("r/old", b"stale", retain=True)
    pub.publish("r/old", b"", retain=True)  # clears
    late = clients(proto)
    late.subscribe("r/#")
    msg = late.next()
    assert (msg.topic, msg.payload, msg.retain) == ("r/status", b"online", True)
    pub.publish("r/status", b"offline")  # live delivery carries retain=0
    live = late.next()
    assert (live.payload, live.retain) == (b"offline", False)


@BOTH
def test_will_is_published_on_abrupt_close_but_not_on_disconnect(
    broker: BrokerThread, clients: Any, proto: int
) -> None:
    watcher = clients(proto)
    watcher.subscribe("wills/#")
    polite = Client(broker.port, proto, "polite")
    polite.paho.will_set("wills/polite", b"polite died", qos=1)
    polite.connect()
    polite.close()
    crashing = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="crashing", protocol=proto)
    crashing.will_set("wills/crashing", b"crashing died", qos=1, retain=True)
    crashing.connect("127.0.0.1", broker.port)
    crashing.loop(timeout=1.0)  # CONNECT out, CONNACK in
    crashing.socket().close()  # power cut: no DISCONNECT
    msg = watcher.next()
    assert (msg.topic, msg.payload) == ("wills/crashing", b"crashing died")
    # Retained will: a later subscriber sees the gateway as dead.
    later = clients(proto)
    later.subscribe("wills/crashing")
    assert later.next().payload == b"crashing died"


def test_mqtt5_disconnect_with_will_publishes_the_will(clients: Any, broker: BrokerThread) -> None:
    watcher = clients(V5)
    watcher.subscribe("w")
    c = Client(broker.port, V5, "leaving")
    c.paho.will_set("w", b"sent on purpose")
    c.connect()
    c.paho.disconnect(reasoncode=mqtt.ReasonCode(PacketTypes.DISCONNECT, identifier=4))
    c.paho.loop_stop()
    assert watcher.next().payload == b"sent on purpose"


@BOTH
def test_same_client_id_takes_over_the_old_connection(clients: Any, proto: int) -> None:
    first = clients(proto, client_id="gw-7")
    clients(proto, client_id="gw-7")
    rc = first.disconnects.get(timeout=WAIT)
    if proto == V5:
        assert rc.value == 0x8E  # session taken over
    else:
        assert rc.is_failure


def test_keepalive_timeout_closes_a_silent_client_and_sends_its_will(
    broker: BrokerThread, clients: Any
) -> None:
    watcher = clients(V311)
    watcher.subscribe("ka")
    raw = socket.create_connection(("127.0.0.1", broker.port), timeout=WAIT)
    raw.sendall(connect_packet(b"silent", keepalive=1, will=(b"ka", b"timed out")))
    assert raw.recv(4) == b"\x20\x02\x00\x00"
    # Silence: the broker must close after 1.5 x keep-alive and publish the will.
    assert watcher.next().payload == b"timed out"
    assert raw.recv(16) == b""
    raw.close()


def test_a_connection_that_never_sends_connect_is_closed() -> None:
    bt = BrokerThread(connect_timeout=0.5)
    try:
        raw = socket.create_connection(("127.0.0.1", bt.port), timeout=WAIT)
        assert raw.recv(16) == b""  # closed by the broker, not by our timeout
        raw.close()
    finally:
        bt.close()


def connect_packet(client_id: bytes, keepalive: int = 30,
                   will: tuple | None = None) -> bytes:
    flags = 0x02
    payload = struct.pack("!H", len(client_id)) + client_id
    if will:
        flags |= 0x04
        payload += struct.pack("!H", len(will[0])) + will[0] + struct.pack("!H", len(will[1])) + will[1]
    body = b"\x00\x04MQTT\x04" + bytes((flags,)) + struct.pack("!H", keepalive) + payload
    return bytes((0x10, len(body))) + body


GARBAGE = [
    b"\xff" * 64,  # packet type 15 with junk
    b"\x10\xff\xff\xff\xff\x7f",  # remaining length of 5 bytes
    b"\x10\xff\xff\xff\x7f",  # 268 MB declared: beyond max packet size
    b"\x10\x0c\x00\x04MQTT\x09\x02\x00\x3c\x00\x00",  # unknown protocol level
    b"\x10\x0a\x00\x04MQTT\x04\x02\x00",  # truncated CONNECT, then EOF
    b"\x30\x05\x00\x01a",  # PUBLISH before CONNECT
    os.urandom(4096),
]


@pytest.mark.parametrize("junk", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_closes_only_that_connection(
    broker: BrokerThread, clients: Any, junk: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    sub = clients(V5)
    sub.subscribe("alive")
    raw = socket.create_connection(("127.0.0.1", broker.port), timeout=WAIT)
    raw.sendall(junk)
    raw.shutdown(socket.SHUT_WR)
    reply = b""
    while True:  # the broker answers at most a CONNACK and closes
        chunk = raw.recv(4096)
        if not chunk:
            break
        reply += chunk
    raw.close()
    assert len(reply) <= 4
    pub = clients(V311)
    pub.publish("alive", b"yes")
    assert sub.next().payload == b"yes"
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_random_packets_after_connect_never_take_the_broker_down(
    broker: BrokerThread, clients: Any, caplog: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(20261123)
    sub = clients(V5)
    sub.subscribe("alive")
    for i in range(60):
        raw = socket.create_connection(("127.0.0.1", broker.port), timeout=WAIT)
        raw.sendall(connect_packet(f"fuzz-{i}".encode()))
        assert raw.recv(4) == b"\x20\x02\x00\x00"
        # A plausible first byte (any packet type and flags), a short length, junk body.
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
        raw.sendall(bytes((rng.randrange(256), len(body))) + body)
        raw.close()
    pub = clients(V311)
    pub.publish("alive", b"still serving")
    assert sub.next().payload == b"still serving"
    # Every bad packet was recognised as such, none reached the internal-error path.
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_malformed_packet_after_connect_closes_that_client_only(
    broker: BrokerThread, clients: Any
) -> None:
    sub = clients(V311)
    sub.subscribe("t")
    raw = socket.create_connection(("127.0.0.1", broker.port), timeout=WAIT)
    raw.sendall(connect_packet(b"bad-actor", will=(b"t", b"bad actor gone")))
    assert raw.recv(4) == b"\x20\x02\x00\x00"
    raw.sendall(b"\x82\x06\x00\x01\x00\x01#\x07")  # SUBSCRIBE with QoS 3 options
    assert raw.recv(16) == b""
    raw.close()
    assert sub.next().payload == b"bad actor gone"  # a protocol error is an abnormal end


def test_oversized_packet_is_refused_with_reason_packet_too_large() -> None:
    bt = BrokerThread(max_packet_size=1024)
    try:
        c = Client(bt.port, V5).connect()
        c.paho.publish("big", b"x" * 2000, qos=1)
        rc = c.disconnects.get(timeout=WAIT)
        assert rc.value == 0x95  # packet too large
        c.paho.loop_stop()
        ok = Client(bt.port, V311).connect()  # the broker itself is fine
        ok.close()
    finally:
        bt.close()


def test_twenty_thousand_qos1_messages_arrive_complete_and_in_order(clients: Any) -> None:
    # One run across protocol versions (3.1.1 in, 5 out): the cost is paho's, so
    # one pass of 20,000 keeps the suite lean while proving no loss and no reordering.
    n = 20_000
    sub = clients(V5)
    sub.subscribe("bulk/#", qos=1)
    payloads: list[bytes] = []
    all_in = threading.Event()

    def collect(client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        payloads.append(msg.payload if msg.qos == 1 else b"wrong qos")
        if len(payloads) == n:
            all_in.set()

    sub.paho.on_message = collect
    pub = clients(V311, inflight=200)
    infos = [pub.paho.publish("bulk/readings", str(i).encode(), qos=1) for i in range(n)]
    # Bounded generously: this waits for completion, it does not time anything.
    assert all_in.wait(timeout=120), f"{len(payloads)} of {n} arrived"
    assert payloads == [str(i).encode() for i in range(n)]
    infos[-1].wait_for_publish(timeout=WAIT)
    assert all(info.is_published() for info in infos)  # every one PUBACKed


def test_a_subscriber_that_stops_reading_does_not_stall_the_others() -> None:
    bt = BrokerThread(max_queued_messages=50, publisher_wait=0.2)
    stuck = socket.socket()
    try:
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.settimeout(WAIT)
        stuck.connect(("127.0.0.1", bt.port))
        stuck.sendall(connect_packet(b"stuck"))
        assert stuck.recv(4) == b"\x20\x02\x00\x00"
        stuck.sendall(b"\x82\x06\x00\x01\x00\x01t\x01")  # SUBSCRIBE t QoS 1, then never read
        assert stuck.recv(5) == b"\x90\x03\x00\x01\x01"
        healthy = Client(bt.port, V311).connect()
        healthy.subscribe("t")
        pub = Client(bt.port, V311).connect()
        payload = b"x" * 1024
        for i in range(1000):
            pub.paho.publish("t", payload + str(i).encode(), qos=1)
        got = [healthy.next().payload for _ in range(1000)]
        assert got == [payload + str(i).encode() for i in range(1000)]
        pub.close()
        healthy.close()
    finally:
        stuck.close()
        bt.close()


def test_standalone_command_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent.broker", "--port", "0", "--log-level", "WARNING"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "listening on 127.0.0.1:" in line, proc.stderr.read()
        port = int(line.split("127.0.0.1:")[1].split()[0])
        c = Client(port, V5).connect()
        c.subscribe("x")
        c.publish("x", b"standalone")
        assert c.next().payload == b"standalone"
        c.close()
        proc.terminate()
        assert proc.wait(timeout=WAIT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(WAIT)


def test_standalone_command_explains_a_busy_port() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "agent.broker", "--port", str(port)],
            cwd=REPO, capture_output=True, text=True, timeout=WAIT * 3,
        )
    assert result.returncode == 2
    assert "--port" in result.stderr
