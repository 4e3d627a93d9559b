"""Plantower PMS5003 particulate sensor frames.

Data sheet (PMS5003 series, V2.5): 32-byte frames
  42 4D  00 1C  13 big-endian data words  checksum word
where the checksum is the 16-bit sum of the first 30 bytes. Words 1-3 are
PM1.0/PM2.5/PM10 at "CF=1" (factory calibration particle), 4-6 the same
under atmospheric environment, 7-12 particle counts per 0.1 L of air above
0.3/0.5/1.0/2.5/5.0/10 um, word 13 is reserved (version and error code).
Active mode sends a frame every 200-800 ms (2.3 s in stable air).

MicroPython-compatible: no typing, no dataclasses.
"""

import struct

from drivers.codecs.scanning import CHECKSUM, FRAME, LENGTH, NEED_MORE, RANGE, scan_stream

FRAME_LEN = 32
LENGTH_FIELD = 28
_SYNC = b"\x42\x4d"
_HEADER = b"\x42\x4d\x00\x1c"
# The effective range in the data sheet is 0-500 ug/m3 and the maximum 1000;
# more than that with a good checksum means a broken sensor.
MAX_UG_M3 = 1000

FIELDS = (
    "pm1_0_cf1",
    "pm2_5_cf1",
    "pm10_cf1",
    "pm1_0",
    "pm2_5",
    "pm10",
    "count_0_3",
    "count_0_5",
    "count_1_0",
    "count_2_5",
    "count_5_0",
    "count_10",
)


def checksum(data):
    return sum(data) & 0xFFFF


def decode_frame(frame):
    """Decode one complete 32-byte frame: (kind, detail_or_dict)."""
    if len(frame) != FRAME_LEN:
        return LENGTH, f"PMS5003 frame has {len(frame)} bytes, expected 32"
    length = (frame[2] << 8) | frame[3]
    if length != LENGTH_FIELD:
        return LENGTH, f"PMS5003 length field {length}, expected 28"
    words = struct.unpack(">14H", frame[4:32])
    if checksum(frame[0:30]) != words[13]:
        return CHECKSUM, f"PMS5003 checksum {words[13]:04X}, computed {checksum(frame[0:30]):04X}"
    out = {"type": "data"}
    for k in range(len(FIELDS)):
        out[FIELDS[k]] = words[k]
    out["version"] = frame[28]
    out["error_code"] = frame[29]
    for name in ("pm1_0_cf1", "pm2_5_cf1", "pm10_cf1", "pm1_0", "pm2_5", "pm10"):
        if out[name] > MAX_UG_M3:
            return RANGE, f"PMS5003 {name} {out[name]} ug/m3 beyond the 1000 maximum"
    return FRAME, out


def _parse(buf, i):
    if len(buf) - i < 4:
        return NEED_MORE, 0, None
    length = (buf[i + 2] << 8) | buf[i + 3]
    if length != LENGTH_FIELD:
        # Other Plantower models (PMS3003: 20) share the header; this codec
        # reads the 28-byte layout only, so say so rather than call it noise.
        return LENGTH, i + 4, f"PMS5003 length field {length}, expected 28"
    if len(buf) - i < FRAME_LEN:
        return NEED_MORE, 0, None
    kind, data = decode_frame(buf[i : i + FRAME_LEN])
    if kind == CHECKSUM:
        k = _find_header(buf, i + 1, i + FRAME_LEN)
        if k > 0:
            # A new header inside: this frame was cut short, not corrupted.
            return LENGTH, i + FRAME_LEN, f"PMS5003 frame cut short after {k - i} bytes"
    return kind, i + FRAME_LEN, data


def _find_header(buf, start, end):
    """First index in [start, end) where a header starts, as far as buf shows it."""
    k = buf.find(_SYNC, start, end + 1)
    while 0 <= k < end:
        tail = buf[k : k + 4]
        if tail == _HEADER[: len(tail)]:
            return k
        k = buf.find(_SYNC, k + 1, end + 1)
    return -1


def scan(buf):
    """Decode every frame in `buf`: (events, rest) -- see drivers.codecs.scanning."""
    return scan_stream(buf, _SYNC, _parse)


def encode_frame(values, version=0x97, error_code=0):
    """A frame as the sensor sends it; `values` maps FIELDS names to ints (missing = 0)."""
    words = [int(values.get(name, 0)) & 0xFFFF for name in FIELDS]
    body = _SYNC + struct.pack(">H", LENGTH_FIELD) + struct.pack(">12H", *words) + bytes([version & 0xFF, error_code & 0xFF])
    return body + struct.pack(">H", checksum(body))


# Public for tools that need where frames start and end (diag serial sniff):
# scan_stream(buf, SYNC, parse_at) with a wrapper around parse_at.
SYNC = _SYNC
parse_at = _parse
