"""With hold_unrouted, the embedded broker never acknowledges a QoS 1 message nobody receives.

That is what keeps a reading in the agent's outbox until the hub has
subscribed, instead of being deleted after a PUBACK from a broker that passed
it to no one.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from typing import Any

import pytest
from broker_support import BOTH, WAIT, BrokerThread, client_factory

HELD_WAIT = 0.5  # how long we watch for a PUBACK that must not come


@pytest.fixture
def holding() -> Iterator[BrokerThread]:
    bt = BrokerThread(hold_unrouted=3)
    yield bt
    bt.close()


@pytest.fixture
def clients(holding: BrokerThread) -> Iterator[Any]:
    yield from client_factory(holding)


@BOTH
def test_unrouted_qos1_is_held_then_delivered_in_order_and_acknowledged(clients: Any, proto: int) -> None:
    pub = clients(proto, "gateway")
    infos = [pub.paho.publish("city/s/gw/telemetry/m1", f"r{i}".encode(), qos=1) for i in range(3)]
    infos[-1].wait_for_publish(timeout=HELD_WAIT)
    assert not any(i.is_published() for i in infos), "nobody subscribed: no PUBACK may be sent"
    hub = clients(proto, "hub")
    hub.subscribe("city/#")
    assert [hub.next().payload for _ in range(3)] == [b"r0", b"r1", b"r2"]
    for info in infos:
        info.wait_for_publish(timeout=WAIT)
        assert info.is_published()


def test_qos0_and_routed_messages_are_not_held(clients: Any) -> None:
    hub = clients(client_id="hub")
    hub.subscribe("a/#")
    pub = clients(client_id="pub")
    pub.publish("a/b", b"x", qos=1)  # acknowledged at once: a subscriber exists
    assert hub.next().payload == b"x"
    info = pub.paho.publish("nobody/listens", b"y", qos=0)
    assert info.rc == 0


def test_a_full_hold_disconnects_the_publisher_instead_of_acknowledging(clients: Any) -> None:
    pub = clients(client_id="gateway", inflight=10)
    infos = [pub.paho.publish("t/x", b"m", qos=1) for _ in range(4)]
    pub.disconnects.get(timeout=WAIT)
    assert not any(i.is_published() for i in infos), "held messages are never acknowledged to nobody"


def test_held_messages_of_a_publisher_that_left_are_dropped(holding: BrokerThread, clients: Any) -> None:
    pub = clients(client_id="gateway")
    pub.paho.publish("t/x", b"m", qos=1)
    pub.close()  # unacknowledged: it will send them again when it comes back
    hub = clients(client_id="hub")
    hub.subscribe("t/#")
    with pytest.raises(queue.Empty):
        hub.messages.get(timeout=HELD_WAIT)
    assert not holding.broker.router.held
