"""Known-answer vectors for drivers/codecs/maxbotix.py (CPython and MicroPython)."""

from drivers.codecs import maxbotix as m


def test_mm_and_inch_frames():
    assert m.decode_frame(b"R1234\r") == ("frame", {"type": "range", "range": 1234, "digits": 4})
    assert m.decode_frame(b"R045\r") == ("frame", {"type": "range", "range": 45, "digits": 3})
    assert m.to_mm(45, "in") == 45 * 25.4
    assert m.to_mm(1234, "mm") == 1234
    assert m.to_mm(123, "cm") == 1230


def test_encode():
    assert m.encode_frame(300) == b"R0300\r"
    assert m.encode_frame(45, 3) == b"R045\r"


def test_stream_resync():
    events, rest = m.scan(b"\x00R12R1234\rR0300\rxxR12")
    assert [e[0] for e in events] == ["garbage", "length", "frame", "frame", "garbage"]
    assert [e[1]["range"] for e in events if e[0] == "frame"] == [1234, 300]
    assert rest == b"R12"


def test_errors():
    assert m.scan(b"R\r")[0][0][0] == "length"
    assert m.scan(b"R1234567\r")[0][0][0] == "length"
    assert m.scan(b"RA\r")[0][0][0] == "format"


def test_fill_percent():
    # A 1000 mm deep bin with the sensor 300 mm above the rim.
    assert m.fill_percent(1300, 1000, 300) == (0.0, False)
    assert m.fill_percent(800, 1000, 300) == (50.0, False)
    assert m.fill_percent(300, 1000, 300) == (100.0, False)


def test_fill_percent_clamps_and_flags():
    # Something above the rim (a bag, a lid): clamped to full, flagged.
    assert m.fill_percent(250, 1000, 300) == (100.0, True)
    # An echo from below the bottom (a missed echo): clamped to empty, flagged.
    assert m.fill_percent(1500, 1000, 300) == (0.0, True)
