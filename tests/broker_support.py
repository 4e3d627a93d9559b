"""Helpers shared by the embedded broker tests: the broker in its own event
loop thread, a recording paho client, raw packet builders."""

from __future__ import annotations

import asyncio
import queue
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

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


def running_broker() -> Iterator[BrokerThread]:
    """Generator for a fixture: a started broker, stopped afterwards."""
    bt = BrokerThread()
    yield bt
    bt.close()


class Client:
    """A paho client that records what it receives; every wait is bounded."""

    def __init__(self, port: int, proto: int, client_id: str = "") -> None:
        self.port = port
        self.proto = proto
        self.paho = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=proto)
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


def client_factory(broker: BrokerThread) -> Iterator[Any]:
    """Generator for a fixture: make(proto, client_id, connect, inflight) -> Client."""
    made: list[Client] = []

    def make(proto: int = V311, client_id: str = "", connect: bool = True, inflight: int = 20) -> Client:
        c = Client(broker.port, proto, client_id)
        c.paho.max_inflight_messages_set(inflight)
        made.append(c)
        return c.connect() if connect else c

    yield make
    for c in made:
        c.close()


def connect_packet(client_id: bytes, keepalive: int = 30, will: tuple | None = None) -> bytes:
    flags = 0x02
    payload = struct.pack("!H", len(client_id)) + client_id
    if will:
        flags |= 0x04
        payload += struct.pack("!H", len(will[0])) + will[0] + struct.pack("!H", len(will[1])) + will[1]
    body = b"\x00\x04MQTT\x04" + bytes((flags,)) + struct.pack("!H", keepalive) + payload
    return bytes((0x10, len(body))) + body


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data
