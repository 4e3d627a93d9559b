"""MQTT 3.1.1 and 5.0 control packets: framing, parsing of what clients send,
encoding of what the broker sends.

Parsers take the fixed-header flags and the body bytes and either return a
plain object or raise MalformedPacket / ProtocolError; they never touch the
network. `read_packet` is the only coroutine: it reads one frame and enforces
the size limit before allocating the body.
"""

from __future__ import annotations

import asyncio
import struct

from agent.broker.properties import (
    IN_ACK,
    IN_CONNECT,
    IN_DISCONNECT,
    IN_PUBLISH,
    IN_SUBSCRIBE,
    IN_UNSUBSCRIBE,
    IN_WILL,
    Buf,
    MalformedPacket,
    Properties,
    ProtocolError,
    encode_binary,
    encode_properties,
    encode_varint,
    read_properties,
)

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = range(8, 16)

# Fixed-header flags every packet type but PUBLISH must carry (section 2.1.3).
REQUIRED_FLAGS = {PUBREL: 2, SUBSCRIBE: 2, UNSUBSCRIBE: 2}

MQTT_311 = 4
MQTT_5 = 5
PINGRESP_BYTES = b"\xd0\x00"
NO_PROPERTIES = b"\x00"


class PacketTooLarge(MalformedPacket):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"packet of {size} bytes exceeds the {limit}-byte limit", reason=0x95)


class UnsupportedProtocol(MalformedPacket):
    def __init__(self, name: str, level: int) -> None:
        super().__init__(f"unsupported protocol {name!r} level {level}", reason=0x84)
        self.level = level


async def read_packet(reader: asyncio.StreamReader, max_size: int) -> tuple[int, int, bytes]:
    """Read one packet: (type, flags, body). EOF mid-packet raises IncompleteReadError."""
    head = await reader.readexactly(2)
    byte = head[1]
    remaining = byte & 0x7F
    shift = 7
    header_len = 2
    while byte & 0x80:
        if header_len == 5:
            raise MalformedPacket("remaining length longer than 4 bytes")
        byte = (await reader.readexactly(1))[0]
        remaining |= (byte & 0x7F) << shift
        shift += 7
        header_len += 1
    if header_len + remaining > max_size:
        raise PacketTooLarge(header_len + remaining, max_size)
    body = await reader.readexactly(remaining) if remaining else b""
    return head[0] >> 4, head[0] & 0x0F, body


def check_flags(ptype: int, flags: int) -> None:
    if ptype != PUBLISH and flags != REQUIRED_FLAGS.get(ptype, 0):
        raise MalformedPacket(f"packet type {ptype} with reserved flags {flags:#x}")


class Will:
    __slots__ = ("topic", "payload", "qos", "retain", "properties")

    def __init__(self, topic: str, payload: bytes, qos: int, retain: bool, properties: Properties | None) -> None:
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties


class Connect:
    __slots__ = ("level", "clean", "keepalive", "client_id", "will", "username", "password", "properties")


def parse_connect(body: bytes) -> Connect:
    buf = Buf(body)
    name = buf.utf8()
    level = buf.u8()
    if (name, level) not in (("MQTT", MQTT_311), ("MQTT", MQTT_5), ("MQIsdp", 3)):
        raise UnsupportedProtocol(name, level)
    v5 = level == MQTT_5
    flags = buf.u8()
    if flags & 0x01:
        raise MalformedPacket("CONNECT reserved flag is set")
    pkt = Connect()
    pkt.level = level
    pkt.clean = bool(flags & 0x02)
    pkt.keepalive = buf.u16()
    pkt.properties = read_properties(buf, IN_CONNECT) if v5 else None
    pkt.client_id = buf.utf8()
    will_flag, will_qos, will_retain = flags & 0x04, (flags >> 3) & 0x03, bool(flags & 0x20)
    pkt.will = None
    if will_flag:
        if will_qos == 3:
            raise MalformedPacket("will QoS 3")
        will_props = read_properties(buf, IN_WILL) if v5 else None
        topic = buf.utf8()
        pkt.will = Will(topic, buf.binary(), will_qos, will_retain, will_props)
    elif will_qos or will_retain:
        raise MalformedPacket("will QoS or retain set without a will")
    has_user, has_password = flags & 0x80, flags & 0x40
    if has_password and not has_user and not v5:
        raise MalformedPacket("password without user name")
    pkt.username = buf.utf8() if has_user else None
    pkt.password = buf.binary() if has_password else None
    if buf.left():
        raise MalformedPacket("trailing bytes after CONNECT payload")
    return pkt


class Publish:
    __slots__ = ("topic", "payload", "qos", "retain", "dup", "packet_id", "properties")


def parse_publish(flags: int, body: bytes, v5: bool) -> Publish:
    buf = Buf(body)
    pkt = Publish()
    pkt.qos = (flags >> 1) & 0x03
    if pkt.qos == 3:
        raise MalformedPacket("PUBLISH with QoS 3")
    pkt.dup = bool(flags & 0x08)
    if pkt.dup and pkt.qos == 0:
        raise MalformedPacket("DUP set on a QoS 0 PUBLISH")
    pkt.retain = bool(flags & 0x01)
    pkt.topic = buf.utf8()
    pkt.packet_id = 0
    if pkt.qos:
        pkt.packet_id = buf.u16()
        if pkt.packet_id == 0:
            raise MalformedPacket("PUBLISH with packet identifier 0")
    pkt.properties = read_properties(buf, IN_PUBLISH) if v5 else None
    pkt.payload = buf.rest()
    return pkt


def parse_subscribe(body: bytes, v5: bool) -> tuple[int, Properties | None, list]:
    """(packet id, properties, [(filter, options byte)])."""
    buf = Buf(body)
    pid = _packet_id(buf)
    props = read_properties(buf, IN_SUBSCRIBE) if v5 else None
    topics = []
    while buf.left():
        topic = buf.utf8()
        options = buf.u8()
        if options & (0xC0 if v5 else 0xFC):
            raise MalformedPacket("reserved subscription option bits are set")
        if options & 0x03 == 3:
            raise MalformedPacket("subscription with QoS 3")
        if (options >> 4) & 0x03 == 3:
            raise ProtocolError("retain handling 3")
        topics.append((topic, options))
    if not topics:
        raise ProtocolError("SUBSCRIBE without topic filters")
    return pid, props, topics


def parse_unsubscribe(body: bytes, v5: bool) -> tuple[int, list]:
    buf = Buf(body)
    pid = _packet_id(buf)
    if v5:
        read_properties(buf, IN_UNSUBSCRIBE)
    topics = []
    while buf.left():
        topics.append(buf.utf8())
    if not topics:
        raise ProtocolError("UNSUBSCRIBE without topic filters")
    return pid, topics


def parse_ack(body: bytes, v5: bool) -> tuple[int, int]:
    """PUBACK / PUBREC / PUBREL / PUBCOMP from a client: (packet id, reason code)."""
    buf = Buf(body)
    pid = _packet_id(buf)
    reason = 0
    if v5 and buf.left():
        reason = buf.u8()
        if buf.left():
            read_properties(buf, IN_ACK)
    if buf.left():
        raise MalformedPacket("trailing bytes after acknowledgement")
    return pid, reason


def parse_disconnect(body: bytes, v5: bool) -> int:
    """Reason code of a client's DISCONNECT (0 = normal, 4 = send my will)."""
    buf = Buf(body)
    reason = 0
    if v5 and buf.left():
        reason = buf.u8()
        if buf.left():
            read_properties(buf, IN_DISCONNECT)
    if buf.left():
        raise MalformedPacket("trailing bytes after DISCONNECT")
    return reason


def _packet_id(buf: Buf) -> int:
    pid = buf.u16()
    if pid == 0:
        raise MalformedPacket("packet identifier 0")
    return pid


# -- encoders (broker -> client) -------------------------------------------


def _frame(first: int, body: bytes) -> bytes:
    return bytes((first,)) + encode_varint(len(body)) + body


def encode_connack(v5: bool, session_present: bool, reason: int, props: tuple = ()) -> bytes:
    body = bytes((1 if session_present else 0, reason))
    if v5:
        body += encode_properties(props)
    return _frame(0x20, body)


def encode_publish(topic: bytes, payload: bytes, qos: int, retain: bool, packet_id: int, props: bytes | None, dup: bool = False) -> bytes:
    """`topic` is the already-encoded length-prefixed topic; `props` the raw v5
    property block (without its length) or None for a 3.1.1 client."""
    parts = [topic]
    if qos:
        parts.append(struct.pack("!H", packet_id))
    if props is not None:
        parts.append(encode_varint(len(props)))
        parts.append(props)
    parts.append(payload)
    body = b"".join(parts)
    first = 0x30 | (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)
    return bytes((first,)) + encode_varint(len(body)) + body


def encode_ack(ptype: int, packet_id: int, v5: bool, reason: int = 0) -> bytes:
    """PUBACK / PUBREC / PUBREL / PUBCOMP; the short form when the reason is success."""
    first = (ptype << 4) | (2 if ptype == PUBREL else 0)
    body = struct.pack("!H", packet_id)
    if v5 and reason:
        body += bytes((reason,))
    return _frame(first, body)


def encode_suback(packet_id: int, codes: list, v5: bool) -> bytes:
    body = struct.pack("!H", packet_id) + (NO_PROPERTIES if v5 else b"") + bytes(codes)
    return _frame(0x90, body)


def encode_unsuback(packet_id: int, codes: list, v5: bool) -> bytes:
    body = struct.pack("!H", packet_id)
    if v5:
        body += NO_PROPERTIES + bytes(codes)
    return _frame(0xB0, body)


def encode_disconnect(reason: int) -> bytes:
    """Server-sent DISCONNECT; only MQTT 5 has one."""
    return _frame(0xE0, bytes((reason,)) + NO_PROPERTIES)


def encode_topic(topic: str) -> bytes:
    return encode_binary(topic.encode("utf-8"))
