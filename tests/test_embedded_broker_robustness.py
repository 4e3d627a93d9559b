"""The embedded broker survives bad clients: junk bytes, protocol violations,
silence, oversized packets and subscribers that stop reading."""

from __future__ import annotations

import logging
import os
import random
import socket
from typing import Any

import pytest
from broker_support import (
    V5,
    V311,
    WAIT,
    BrokerThread,
    Client,
    connect_packet,
)


def test_keepalive_timeout_closes_a_silent_client_and_sends_its_will(broker: BrokerThread, clients: Any) -> None:
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
def test_garbage_closes_only_that_connection(broker: BrokerThread, clients: Any, junk: bytes, caplog: pytest.LogCaptureFixture) -> None:
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


def test_random_packets_after_connect_never_take_the_broker_down(broker: BrokerThread, clients: Any, caplog: pytest.LogCaptureFixture) -> None:
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


def test_malformed_packet_after_connect_closes_that_client_only(broker: BrokerThread, clients: Any) -> None:
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


def test_a_subscriber_that_stops_reading_does_not_stall_the_others() -> None:
    # The healthy subscriber gets the default 2 s to catch up: with a tighter
    # bound a loaded test host can make it look stalled too, and a stalled
    # session's overflow is dropped by design.
    bt = BrokerThread(max_queued_messages=200, publisher_wait=2.0)
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
