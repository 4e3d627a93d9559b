"""Known-answer vectors for drivers/codecs/nmea.py (CPython and MicroPython)."""

from drivers.codecs import nmea as m

# The reference sentences found in most NMEA 0183 descriptions.
RMC = b"$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A\r\n"
GGA = b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n"
GSV = b"$GPGSV,3,1,11,03,03,111,00,04,15,270,00,06,01,010,00,13,06,292,00*74\r\n"
# u-blox receiver description examples (NMEA 2.3 RMC with mode indicator).
UBX_RMC = b"$GPRMC,083559.00,A,4717.11437,N,00833.91522,E,0.004,77.52,091202,,,A*57\r\n"
UBX_GGA = b"$GPGGA,092725.00,4717.11399,N,00833.91590,E,1,08,1.01,499.6,M,48.0,M,,*5B\r\n"
# What a receiver without a fix sends.
VOID_RMC = b"$GPRMC,,V,,,,,,,,,,N*53\r\n"
NO_FIX_GGA = b"$GPGGA,,,,,,0,00,99.99,,,,,,*48\r\n"


def close(a, b, eps=1e-6):
    return abs(a - b) < eps


def test_checksum():
    assert m.checksum(b"GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,") == 0x47
    assert m.build_sentence("GPRMC,,V,,,,,,,,,,N") == VOID_RMC


def test_rmc_reference():
    kind, d = m.decode_sentence(RMC)
    assert kind == "frame"
    assert d["type"] == "RMC" and d["talker"] == "GP"
    assert d["valid"] is True
    assert close(d["latitude"], 48.1173)
    assert close(d["longitude"], 11.516666666)
    assert d["date"] == (1994, 3, 23)
    # 1994-03-23 12:35:19 UTC
    assert d["epoch"] == 764426119
    assert close(d["speed_kmh"], 22.4 * 1.852)


def test_gga_reference():
    kind, d = m.decode_sentence(GGA)
    assert kind == "frame"
    assert d["quality"] == 1 and d["valid"] is True
    assert d["satellites"] == 8
    assert close(d["hdop"], 0.9)
    assert close(d["altitude"], 545.4)
    assert close(d["geoid_separation"], 46.9)
    assert d["time"] == (12, 35, 19.0)


def test_ublox_examples():
    kind, d = m.decode_sentence(UBX_RMC)
    assert kind == "frame" and d["valid"] and d["mode"] == "A"
    assert close(d["latitude"], 47 + 17.11437 / 60)
    assert close(d["longitude"], 8 + 33.91522 / 60)
    # 2002-12-09 08:35:59 UTC
    assert d["epoch"] == 1039422959
    kind, d = m.decode_sentence(UBX_GGA)
    assert kind == "frame" and d["satellites"] == 8
    assert close(d["hdop"], 1.01) and close(d["altitude"], 499.6)


def test_southern_western_hemispheres():
    kind, d = m.decode_sentence(m.build_sentence("GNRMC,000000.00,A,3351.000,S,15112.600,W,0.0,0.0,010124,,,D"))
    assert kind == "frame"
    assert close(d["latitude"], -33.85)
    assert close(d["longitude"], -151.21)
    assert d["talker"] == "GN"
    assert d["epoch"] == 1704067200


def test_no_fix():
    kind, d = m.decode_sentence(VOID_RMC)
    assert kind == "frame"
    assert d["valid"] is False and d["latitude"] is None and d["epoch"] is None
    kind, d = m.decode_sentence(NO_FIX_GGA)
    assert kind == "frame"
    assert d["valid"] is False and d["quality"] == 0 and d["altitude"] is None


def test_other_sentences_are_frames_without_fields():
    kind, d = m.decode_sentence(GSV)
    assert kind == "frame" and d["type"] == "GSV"
    assert "latitude" not in d


def test_classified_errors():
    assert m.decode_sentence(RMC.replace(b"*6A", b"*6B"))[0] == "checksum"
    assert m.decode_sentence(b"$GPRMC,123519,A\r\n")[0] == "checksum"
    assert m.decode_sentence(m.build_sentence("GPRMC,123519,A,4807.038,N"))[0] == "format"
    assert m.decode_sentence(m.build_sentence("GPRMC,123519,A,9107.038,N,01131.000,E,0,0,230394,,"))[0] == "range"
    assert m.decode_sentence(m.build_sentence("GPRMC,123519,A,48x7.038,N,01131.000,E,0,0,230394,,"))[0] == "format"
    assert m.decode_sentence(m.build_sentence("GPRMC,123519,A,4807.038,N,01131.000,E,0,0,300294,,"))[0] == "format"
    assert m.decode_sentence(m.build_sentence("GPRMC,123519,A,4807.038,N,01131.000,E,nan,0,230394,,"))[0] == "format"


def test_stream_with_cut_sentence_and_noise():
    stream = b"\x00\x7f" + GGA[:30] + RMC + b"junk" + GSV + GGA[:10]
    events, rest = m.scan(stream)
    assert [e[0] for e in events] == ["garbage", "length", "frame", "garbage", "frame"]
    assert events[2][1]["type"] == "RMC"
    assert rest == GGA[:10]
    events, rest = m.scan(rest + GGA[10:])
    assert [e[0] for e in events] == ["frame"] and rest == b""


def test_runaway_sentence_is_a_length_error():
    events, rest = m.scan(b"$GPTXT," + b"A" * 200 + b"\r\n" + GGA)
    kinds = [e[0] for e in events]
    assert kinds[0] == "length" and kinds[-1] == "frame"
    assert rest == b""
