"""Known-answer vectors for drivers/codecs/sds011.py (CPython and MicroPython)."""

from drivers.codecs import sds011 as m

# The data frame from the Laser Dust Sensor Control Protocol V1.3: PM2.5 123.6,
# PM10 261.8, device id A1 60.
DATASHEET_FRAME = bytes.fromhex("aac0d4043a0aa1601dab")
# The sensor's reply to "set sleep" from the same document.
DATASHEET_SLEEP_REPLY = bytes.fromhex("aac506010000a16008ab")


def close(a, b):
    # MicroPython's float parser is not always correctly rounded
    return abs(a - b) < 1e-9


def test_datasheet_data_frame():
    kind, data = m.decode_frame(DATASHEET_FRAME)
    assert kind == "frame"
    assert close(data["pm2_5"], 123.6)
    assert close(data["pm10"], 261.8)
    assert data["device_id"] == 0x60A1


def test_datasheet_reply_frame():
    kind, data = m.decode_frame(DATASHEET_SLEEP_REPLY)
    assert kind == "frame"
    assert data["type"] == "reply"
    assert data["command"] == 6


def test_datasheet_command_frames():
    assert m.query_command() == bytes.fromhex("aab404000000000000000000000000ffff02ab")
    assert m.sleep_command(True) == bytes.fromhex("aab406010000000000000000000000ffff05ab")
    assert m.sleep_command(False) == bytes.fromhex("aab406010100000000000000000000ffff06ab")
    assert m.reporting_mode_command(True) == bytes.fromhex("aab402010100000000000000000000ffff02ab")


def test_command_to_one_device():
    frame = m.query_command(0x60A1)
    assert frame[15:17] == b"\xa1\x60"
    assert frame[17] == (sum(frame[2:17]) & 0xFF)


def test_encode_round_trip():
    assert m.encode_frame(123.6, 261.8, 0x60A1) == DATASHEET_FRAME


def test_checksum_error_is_classified():
    bad = bytearray(DATASHEET_FRAME)
    bad[8] ^= 0x01
    events, rest = m.scan(bytes(bad))
    assert events == [("checksum", "SDS011 checksum 1C, computed 1D")]
    assert rest == b""


def test_range_error():
    # 0x2800 = 1024.0 ug/m3, beyond the sensor's 999.9
    events, _ = m.scan(bytes.fromhex("aac00028001001023bab"))
    assert events[0][0] == "range"


def test_scan_resyncs_after_garbage_and_keeps_partial_tail():
    stream = b"\x00\xff\xaa\x13" + DATASHEET_FRAME + DATASHEET_FRAME[:4]
    events, rest = m.scan(stream)
    assert [e[0] for e in events] == ["garbage", "frame"]
    assert rest == DATASHEET_FRAME[:4]
    events, rest = m.scan(rest + DATASHEET_FRAME[4:])
    assert [e[0] for e in events] == ["frame"]
    assert rest == b""


def test_frame_inside_a_cut_short_one_is_found():
    # The sensor was plugged in mid-frame: 4 bytes of a frame, then a full one.
    stream = DATASHEET_FRAME[:4] + DATASHEET_FRAME
    events, rest = m.scan(stream)
    kinds = [e[0] for e in events]
    assert kinds == ["length", "frame"]
    assert rest == b""


def test_split_header_is_kept():
    events, rest = m.scan(b"\x01\x02\xaa")
    assert events == [("garbage", "2 bytes outside any frame")]
    assert rest == b"\xaa"
