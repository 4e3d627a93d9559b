"""Known-answer vectors for drivers/codecs/pms5003.py (CPython and MicroPython)."""

from drivers.codecs import pms5003 as m

# A frame captured from a PMS5003 in clean indoor air (firmware version 0x97).
CLEAN_AIR = bytes.fromhex("424d001c00000000000000000000000000240007000100010001000097000170")
# A frame with PM2.5 18 ug/m3, as in a city street in winter.
STREET = bytes.fromhex("424d001c000c00120015000c001200150846026e0069000800020000970002d9")


def test_captured_clean_air_frame():
    kind, data = m.decode_frame(CLEAN_AIR)
    assert kind == "frame"
    assert data["pm2_5"] == 0 and data["pm10"] == 0
    assert data["count_0_3"] == 36
    assert data["count_0_5"] == 7
    assert data["count_1_0"] == 1 and data["count_2_5"] == 1 and data["count_5_0"] == 1
    assert data["count_10"] == 0
    assert data["version"] == 0x97
    assert data["error_code"] == 0


def test_street_frame_fields():
    kind, data = m.decode_frame(STREET)
    assert kind == "frame"
    assert (data["pm1_0_cf1"], data["pm2_5_cf1"], data["pm10_cf1"]) == (12, 18, 21)
    assert (data["pm1_0"], data["pm2_5"], data["pm10"]) == (12, 18, 21)
    assert data["count_0_3"] == 2118
    assert data["count_0_5"] == 622


def test_checksum_is_sum_of_first_30_bytes():
    assert m.checksum(STREET[:30]) == 0x02D9
    assert m.checksum(CLEAN_AIR[:30]) == 0x0170


def test_encode_round_trip():
    values = {"pm1_0_cf1": 12, "pm2_5_cf1": 18, "pm10_cf1": 21, "pm1_0": 12, "pm2_5": 18, "pm10": 21}
    values.update({"count_0_3": 2118, "count_0_5": 622, "count_1_0": 105, "count_2_5": 8, "count_5_0": 2})
    assert m.encode_frame(values) == STREET


def test_checksum_error():
    bad = bytearray(STREET)
    bad[10] ^= 0x40
    events, rest = m.scan(bytes(bad))
    assert [e[0] for e in events] == ["checksum"]
    assert rest == b""


def test_wrong_length_field_is_a_length_error():
    # PMS3003 frames (length 20) share the header.
    events, rest = m.scan(bytes.fromhex("424d0014") + STREET)
    assert [e[0] for e in events] == ["length", "frame"]
    assert rest == b""


def test_scan_across_chunks_and_garbage():
    buf = b""
    frames = []
    stream = b"\x42\x00garbage" + CLEAN_AIR + b"\x4d" + STREET
    for k in range(0, len(stream), 7):
        events, buf = m.scan(buf + stream[k : k + 7])
        frames += [e[1] for e in events if e[0] == "frame"]
    assert [f["pm2_5"] for f in frames] == [0, 18]
    assert buf == b""


def test_range_error():
    values = {"pm2_5": 4000}
    events, _ = m.scan(m.encode_frame(values))
    assert events[0][0] == "range"


def test_cut_short_frame_is_a_length_error():
    # The sensor was plugged in mid-frame: 10 bytes of one frame, then a whole one.
    events, rest = m.scan(STREET[:10] + CLEAN_AIR)
    assert [e[0] for e in events] == ["length", "frame"]
    assert events[1][1]["count_0_3"] == 36
    assert rest == b""
