"""The embedded broker serves real paho-mqtt 2.x clients over MQTT 3.1.1 and 5."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from broker_support import (
    BOTH,
    REPO,
    V5,
    V311,
    WAIT,
    BrokerThread,
    Client,
    connect_packet,
    recv_exactly,
)
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


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


def test_qos2_retransmission_before_pubrel_is_delivered_once(broker: BrokerThread, clients: Any) -> None:
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
def test_will_is_published_on_abrupt_close_but_not_on_disconnect(broker: BrokerThread, clients: Any, proto: int) -> None:
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


def test_standalone_command_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent.broker", "--port", "0", "--log-level", "WARNING"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
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
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=WAIT * 3,
        )
    assert result.returncode == 2
    assert "--port" in result.stderr
