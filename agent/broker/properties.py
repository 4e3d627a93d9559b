"""MQTT 5 properties: a byte reader for packet bodies and the property codec.

Every property a v5 client may send is parsed (not just skipped by length) so
that a packet whose property block lies about its size, repeats a single-use
property or carries one that does not belong in that packet is rejected as
malformed instead of silently misreading the rest of the packet.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

# Reason codes used when a packet is rejected (MQTT 5 section 2.4).
MALFORMED = 0x81
PROTOCOL_ERROR = 0x82


class MalformedPacket(ValueError):
    """The client sent bytes that are not a valid packet: its connection is closed."""

    def __init__(self, message: str, reason: int = MALFORMED) -> None:
        super().__init__(message)
        self.reason = reason


class ProtocolError(MalformedPacket):
    def __init__(self, message: str, reason: int = PROTOCOL_ERROR) -> None:
        super().__init__(message, reason)


class Buf:
    """Sequential reader over one packet body; every read is bounds-checked."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.data):
            raise MalformedPacket("packet shorter than its fields say")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def u8(self) -> int:
        if self.pos >= len(self.data):
            raise MalformedPacket("packet shorter than its fields say")
        self.pos += 1
        return self.data[self.pos - 1]

    def u16(self) -> int:
        return struct.unpack("!H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack("!I", self.take(4))[0]

    def varint(self) -> int:
        value = 0
        for shift in (0, 7, 14, 21):
            byte = self.u8()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
        raise MalformedPacket("variable byte integer longer than 4 bytes")

    def binary(self) -> bytes:
        return self.take(self.u16())

    def utf8(self) -> str:
        raw = self.binary()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedPacket("string is not valid UTF-8") from None
        if "\x00" in text:
            raise MalformedPacket("string contains U+0000")
        return text

    def rest(self) -> bytes:
        chunk = self.data[self.pos :]
        self.pos = len(self.data)
        return chunk


def encode_varint(value: int) -> bytes:
    if not 0 <= value <= 268_435_455:
        raise ValueError(f"{value} does not fit a variable byte integer")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_binary(data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise ValueError("string or binary field longer than 65535 bytes")
    return struct.pack("!H", len(data)) + data


def encode_str(text: str) -> bytes:
    return encode_binary(text.encode("utf-8"))


# Property identifier -> (name, wire type). Names follow the specification.
BYTE, U16, U32, VARINT, UTF8, BINARY, PAIR = range(7)
PROPERTIES = {
    0x01: ("payload_format", BYTE),
    0x02: ("message_expiry", U32),
    0x03: ("content_type", UTF8),
    0x08: ("response_topic", UTF8),
    0x09: ("correlation_data", BINARY),
    0x0B: ("subscription_id", VARINT),
    0x11: ("session_expiry", U32),
    0x12: ("assigned_client_id", UTF8),
    0x13: ("server_keep_alive", U16),
    0x15: ("auth_method", UTF8),
    0x16: ("auth_data", BINARY),
    0x17: ("request_problem_info", BYTE),
    0x18: ("will_delay", U32),
    0x19: ("request_response_info", BYTE),
    0x1A: ("response_info", UTF8),
    0x1C: ("server_reference", UTF8),
    0x1F: ("reason_string", UTF8),
    0x21: ("receive_maximum", U16),
    0x22: ("topic_alias_maximum", U16),
    0x23: ("topic_alias", U16),
    0x24: ("maximum_qos", BYTE),
    0x25: ("retain_available", BYTE),
    0x26: ("user_property", PAIR),
    0x27: ("maximum_packet_size", U32),
    0x28: ("wildcard_available", BYTE),
    0x29: ("subscription_id_available", BYTE),
    0x2A: ("shared_available", BYTE),
}
REPEATABLE = {0x26}

# What a client may put in each packet (section 3.x.2.3 of the specification).
IN_CONNECT = frozenset({0x11, 0x21, 0x27, 0x22, 0x19, 0x17, 0x26, 0x15, 0x16})
IN_WILL = frozenset({0x18, 0x01, 0x02, 0x03, 0x08, 0x09, 0x26})
IN_PUBLISH = frozenset({0x01, 0x02, 0x23, 0x08, 0x09, 0x26, 0x03})
IN_SUBSCRIBE = frozenset({0x0B, 0x26})
IN_UNSUBSCRIBE = frozenset({0x26})
IN_ACK = frozenset({0x1F, 0x26})
IN_DISCONNECT = frozenset({0x11, 0x1F, 0x26, 0x1C})


class Properties:
    """Parsed properties: `values` maps name -> value (user properties as a list
    of pairs); `raw` is the property block as sent, for forwarding unchanged."""

    __slots__ = ("values", "pairs", "raw")

    def __init__(self) -> None:
        self.values: dict = {}
        self.pairs: list = []
        self.raw = b""

    def get(self, name: str, default: object = None) -> object:
        return self.values.get(name, default)


def read_properties(buf: Buf, allowed: frozenset) -> Properties:
    length = buf.varint()
    block = Buf(buf.take(length))
    props = Properties()
    props.raw = block.data
    seen: set = set()
    while block.left():
        ident = block.varint()
        spec = PROPERTIES.get(ident)
        if spec is None:
            raise MalformedPacket(f"unknown property 0x{ident:02x}")
        if ident not in allowed:
            raise ProtocolError(f"property {spec[0]} is not allowed in this packet")
        if ident in seen and ident not in REPEATABLE:
            raise ProtocolError(f"property {spec[0]} appears twice")
        seen.add(ident)
        kind = spec[1]
        if kind == BYTE:
            value = block.u8()
        elif kind == U16:
            value = block.u16()
        elif kind == U32:
            value = block.u32()
        elif kind == VARINT:
            value = block.varint()
        elif kind == UTF8:
            value = block.utf8()
        elif kind == BINARY:
            value = block.binary()
        else:
            value = (block.utf8(), block.utf8())
        props.pairs.append((ident, value))
        if ident == 0x26:
            props.values.setdefault("user_property", []).append(value)
        else:
            props.values[spec[0]] = value
    _check_values(props)
    return props


def _check_values(props: Properties) -> None:
    values = props.values
    for name in ("payload_format", "request_problem_info", "request_response_info"):
        if values.get(name, 0) not in (0, 1):
            raise ProtocolError(f"property {name} must be 0 or 1")
    if values.get("receive_maximum") == 0:
        raise ProtocolError("receive_maximum must not be 0")
    if values.get("maximum_packet_size") == 0:
        raise ProtocolError("maximum_packet_size must not be 0")
    if values.get("subscription_id") == 0:
        raise ProtocolError("subscription identifier must not be 0")


def encode_properties(pairs: Iterable[tuple]) -> bytes:
    """Encode (identifier, value) pairs as a property block with its length."""
    body = bytearray()
    for ident, value in pairs:
        kind = PROPERTIES[ident][1]
        body += encode_varint(ident)
        if kind == BYTE:
            body.append(value)
        elif kind == U16:
            body += struct.pack("!H", value)
        elif kind == U32:
            body += struct.pack("!I", value)
        elif kind == VARINT:
            body += encode_varint(value)
        elif kind == UTF8:
            body += encode_str(value)
        elif kind == BINARY:
            body += encode_binary(value)
        else:
            body += encode_str(value[0]) + encode_str(value[1])
    return encode_varint(len(body)) + bytes(body)
