"""CRC-16/MODBUS and RTU framing, as pure functions over bytes.

MicroPython-compatible: no typing, dataclasses or enum; only builtins.

An RTU frame is  unit(1) | function(1) | data(n) | crc(2, low byte first).
RTU has no length field, so the length of a frame has to be derived from its
function code; `rtu_request_length` and `rtu_response_length` do that for the
function codes the gateway uses (1-6, 15, 16 and exception answers).
"""


def _make_table():
    # Reflected polynomial 0xA001 (0x8005 bit-reversed), as the spec defines it.
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            if crc & 1:
                crc = (crc >> 1) ^ 0xA001
            else:
                crc >>= 1
        table.append(crc)
    return tuple(table)


_TABLE = _make_table()


def crc16(data, crc=0xFFFF):
    """CRC-16/MODBUS of `data` (init 0xFFFF, reflected, no final xor).

    Pass a previous result as `crc` to continue over a further chunk.
    """
    table = _TABLE
    for b in data:
        crc = (crc >> 8) ^ table[(crc ^ b) & 0xFF]
    return crc


def crc_bytes(data):
    """The two CRC bytes as they go on the wire (low byte first)."""
    crc = crc16(data)
    return bytes((crc & 0xFF, crc >> 8))


def build_rtu_frame(unit, pdu):
    """unit id + PDU (function code and data) + CRC."""
    if not 0 <= unit <= 255:
        raise ValueError(f"unit id must be 0..255, got {unit}")
    body = bytes((unit,)) + bytes(pdu)
    return body + crc_bytes(body)


def check_rtu_frame(frame):
    """True if `frame` is at least 4 bytes long and its CRC matches."""
    if len(frame) < 4:
        return False
    # The CRC over a whole frame including its own CRC is 0: no slicing needed.
    return crc16(frame) == 0


def split_rtu_frame(frame):
    """(unit, pdu) of a checked frame; ValueError if it is short or its CRC is wrong."""
    if len(frame) < 4:
        raise ValueError(f"RTU frame too short ({len(frame)} bytes)")
    if crc16(frame) != 0:
        raise ValueError("RTU frame CRC mismatch")
    return frame[0], bytes(frame[1:-2])


# Function codes whose request is unit, fc, address(2), count-or-value(2), crc(2).
_FIXED_REQUEST = (1, 2, 3, 4, 5, 6)


def rtu_request_length(buf):
    """Length of the request frame at the start of `buf`.

    Returns 0 if more bytes are needed to tell, -1 for a function code this
    codec does not know (the caller should resynchronise).
    """
    if len(buf) < 2:
        return 0
    fc = buf[1]
    if fc in _FIXED_REQUEST:
        return 8
    if fc in (15, 16):
        if len(buf) < 7:
            return 0
        return 9 + buf[6]
    return -1


def rtu_response_length(buf):
    """Length of the response frame at the start of `buf` (0: need more bytes, -1: unknown)."""
    if len(buf) < 2:
        return 0
    fc = buf[1]
    if fc & 0x80:
        return 5
    if fc in (1, 2, 3, 4):
        if len(buf) < 3:
            return 0
        return 5 + buf[2]
    if fc in (5, 6, 15, 16):
        return 8
    return -1


def read_response_size(fc, count):
    """Bytes of the RTU answer to a read of `count` registers or bits (for line-time budgets)."""
    if fc in (1, 2):
        return 5 + (count + 7) // 8
    return 5 + 2 * count
