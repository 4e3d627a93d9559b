"""Packet codec and topic matching of the embedded broker, without sockets."""

from __future__ import annotations

import asyncio
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.broker import packets as p
from agent.broker.properties import (
    IN_CONNECT,
    IN_PUBLISH,
    Buf,
    MalformedPacket,
    ProtocolError,
    encode_properties,
    read_properties,
)
from agent.broker.topics import SubscriptionTree, filter_matches, valid_filter, valid_topic_name


@pytest.mark.parametrize(
    "topic_filter, topic, expected",
    [
        ("sport/tennis/player1/#", "sport/tennis/player1", True),
        ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
        ("sport/#", "sport", True),
        ("#", "sport/tennis", True),
        ("+", "finance", True),
        ("+", "/finance", False),
        ("/+", "/finance", True),
        ("+/+", "/finance", True),
        ("sport/+", "sport/", True),
        ("sport/+/player1", "sport/tennis/player1", True),
        ("sport/+/player1", "sport/tennis/x/player1", False),
        ("#", "$SYS/uptime", False),
        ("+/uptime", "$SYS/uptime", False),
        ("$SYS/#", "$SYS/uptime", True),
        ("$SYS/+", "$SYS/uptime", True),
        ("a/b", "a/b/c", False),
    ],
)
def test_filter_matching_follows_the_specification(topic_filter: str, topic: str, expected: bool) -> None:
    assert filter_matches(topic_filter, topic) is expected
    tree = SubscriptionTree()
    tree.add(topic_filter, "s", 1)
    assert (list(tree.match(topic)) == [("s", 1)]) is expected


@pytest.mark.parametrize("good", ["#", "+", "a/#", "+/+/x", "/", "a//b", "$SYS/#"])
def test_valid_filters(good: str) -> None:
    assert valid_filter(good)


@pytest.mark.parametrize("bad", ["", "a#", "a/#/b", "a+/b", "#/a", "a/b+"])
def test_invalid_filters(bad: str) -> None:
    assert not valid_filter(bad)


def test_topic_names_cannot_hold_wildcards() -> None:
    assert valid_topic_name("gw/1/temp") and not valid_topic_name("gw/+/temp")
    assert not valid_topic_name("") and not valid_topic_name("gw/#")


levels = st.sampled_from(["a", "b", "", "$SYS", "$x"])
topics = st.lists(levels, min_size=1, max_size=4).map("/".join)
filters = st.builds(
    lambda ls, tail: "/".join(ls + tail),
    st.lists(st.sampled_from(["a", "b", "", "+", "$SYS"]), max_size=3),
    st.sampled_from([[], ["#"]]),
).filter(bool)


@settings(max_examples=150, deadline=None)
@given(st.lists(filters, max_size=8), topics, st.lists(st.integers(0, 7), max_size=8))
def test_tree_matches_the_same_as_one_by_one(subs: list, topic: str, removals: list) -> None:
    tree = SubscriptionTree()
    for i, f in enumerate(subs):
        tree.add(f, i, f)
    live = dict(enumerate(subs))
    for r in removals:
        if r in live:
            assert tree.remove(live.pop(r), r)
    expected = sorted(k for k, f in live.items() if filter_matches(f, topic))
    assert sorted(k for k, _ in tree.match(topic)) == expected
    assert tree.count == len(live)


PARSERS = [
    lambda b: p.parse_connect(b),
    lambda b: p.parse_publish(0x02, b, True),
    lambda b: p.parse_publish(0x00, b, False),
    lambda b: p.parse_subscribe(b, True),
    lambda b: p.parse_subscribe(b, False),
    lambda b: p.parse_unsubscribe(b, True),
    lambda b: p.parse_ack(b, True),
    lambda b: p.parse_disconnect(b, True),
]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(range(len(PARSERS))), st.binary(max_size=96))
def test_parsers_reject_junk_only_with_malformed_packet(which: int, body: bytes) -> None:
    try:
        PARSERS[which](body)
    except MalformedPacket:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40))
def test_connect_prefix_then_junk_is_rejected_cleanly(tail: bytes) -> None:
    try:
        p.parse_connect(b"\x00\x04MQTT\x05\xc6\x00\x3c" + tail)
    except MalformedPacket:
        pass


def test_properties_round_trip_and_reject_lies() -> None:
    pairs = [(0x11, 3600), (0x21, 20), (0x26, ("site", "north")), (0x26, ("rack", "3"))]
    block = encode_properties(pairs)
    props = read_properties(Buf(block), IN_CONNECT)
    assert props.get("session_expiry") == 3600 and props.get("receive_maximum") == 20
    assert props.get("user_property") == [("site", "north"), ("rack", "3")]
    with pytest.raises(MalformedPacket):  # declared longer than what follows
        read_properties(Buf(b"\x0a" + block[1:]), IN_CONNECT)
    with pytest.raises(ProtocolError):  # single-use property twice
        read_properties(Buf(encode_properties([(0x21, 1), (0x21, 2)])), IN_CONNECT)
    with pytest.raises(ProtocolError):  # not a PUBLISH property
        read_properties(Buf(encode_properties([(0x11, 1)])), IN_PUBLISH)
    with pytest.raises(ProtocolError):
        read_properties(Buf(encode_properties([(0x21, 0)])), IN_CONNECT)
    with pytest.raises(MalformedPacket):  # unknown identifier
        read_properties(Buf(b"\x02\x7f\x00"), IN_CONNECT)


def test_v5_connect_with_will_properties_is_parsed_past_them() -> None:
    props = encode_properties([(0x11, 60), (0x27, 1024)])
    will_props = encode_properties([(0x18, 5), (0x03, "text/plain")])
    body = (
        b"\x00\x04MQTT\x05"
        + bytes((0x02 | 0x04 | 0x08 | 0x80,))
        + struct.pack("!H", 30)
        + props
        + b"\x00\x02gw"
        + will_props
        + b"\x00\x01w"
        + b"\x00\x04dead"
        + b"\x00\x04user"
    )
    pkt = p.parse_connect(body)
    assert (pkt.client_id, pkt.keepalive, pkt.username) == ("gw", 30, "user")
    assert (pkt.will.topic, pkt.will.payload, pkt.will.qos) == ("w", b"dead", 1)
    assert pkt.will.properties.get("content_type") == "text/plain"
    assert pkt.properties.get("maximum_packet_size") == 1024


def test_oversized_packet_is_refused_from_its_header_alone() -> None:
    async def scenario() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(b"\x30\xff\xff\x7f")  # 2 MB declared, body never sent
        with pytest.raises(p.PacketTooLarge):
            await p.read_packet(reader, 1024)

    asyncio.run(scenario())


def test_publish_encoding_matches_what_the_parser_reads() -> None:
    data = p.encode_publish(p.encode_topic("a/b"), b"payload", 1, True, 7, b"\x01\x01")
    assert data[0] == 0x33
    pkt = p.parse_publish(data[0] & 0x0F, data[2:], True)
    assert (pkt.topic, pkt.packet_id, pkt.payload, pkt.retain) == ("a/b", 7, b"payload", True)
    assert pkt.properties.get("payload_format") == 1
