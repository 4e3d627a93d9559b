"""NMEA 0183 sentences from GPS/GNSS receivers: checksum, RMC and GGA.

A sentence is `$` + address + `,`-separated fields + `*` + two hex digits +
CR LF, at most 82 characters; the checksum is the XOR of every byte between
`$` and `*`. RMC carries the fix validity, position and UTC date and time;
GGA the fix quality, satellites in use, HDOP and altitude. Any talker works
(GP, GN, GL, GA, BD). Other sentences are returned as frames with their type
only, so a reader can count them without decoding them.

MicroPython-compatible: no typing, no dataclasses.
"""

from drivers.codecs.civil_time import days_in_month, epoch_seconds
from drivers.codecs.scanning import CHECKSUM, FORMAT, FRAME, LENGTH, NEED_MORE, RANGE, scan_stream

_SYNC = b"$"
# 82 is the standard's limit; receivers with high-precision or proprietary
# sentences exceed it, so a sentence is only called runaway well beyond.
MAX_SENTENCE = 128


def checksum(body):
    """XOR of the bytes between `$` and `*` (body excludes both)."""
    c = 0
    for b in body:
        c ^= b
    return c


def build_sentence(body):
    """`$body*HH\\r\\n` as bytes; body is a str without `$` and `*`."""
    raw = body.encode()
    return b"$" + raw + b"*" + (f"{checksum(raw):02X}").encode() + b"\r\n"


def _check_number(text, allow_dot):
    # float() accepts "nan", "1e5" and "1_0" on CPython but not everywhere on
    # MicroPython; NMEA numbers are plain decimals, so check them the same way.
    start = 1 if text[:1] == "-" else 0
    dots = 0
    digits = 0
    for ch in text[start:]:
        if ch == ".":
            dots += 1
        elif "0" <= ch <= "9":
            digits += 1
        else:
            raise ValueError(f"number {text!r}")
    if digits == 0 or dots > (1 if allow_dot else 0):
        raise ValueError(f"number {text!r}")


def _num(text):
    """float of a field, None when empty; raises ValueError when malformed."""
    if text == "":
        return None
    _check_number(text, True)
    return float(text)


def _int(text):
    if text == "":
        return None
    _check_number(text, False)
    return int(text)


def parse_coordinate(value, hemisphere, max_degrees):
    """`ddmm.mmmm` / `dddmm.mmmm` and N/S/E/W to signed decimal degrees.

    Returns None for empty fields; raises ValueError when malformed and
    OverflowError when outside +-max_degrees.
    """
    if value == "" and hemisphere == "":
        return None
    if hemisphere not in ("N", "S", "E", "W"):
        raise ValueError(f"hemisphere {hemisphere!r}")
    dot = value.find(".")
    if dot < 0:
        dot = len(value)
    if dot < 3:
        raise ValueError(f"coordinate {value!r}")
    _check_number(value, True)
    if value[0] == "-":
        raise ValueError(f"coordinate {value!r}")
    degrees = int(value[: dot - 2])
    minutes = float(value[dot - 2 :])
    if degrees < 0 or minutes < 0 or minutes >= 60:
        raise ValueError(f"coordinate {value!r}")
    result = degrees + minutes / 60.0
    if result > max_degrees:
        raise OverflowError(f"{value}{hemisphere} beyond {max_degrees} degrees")
    if hemisphere in ("S", "W"):
        result = -result
    return result


def parse_time(text):
    """`hhmmss(.sss)` to (hour, minute, second-with-fraction), None if empty."""
    if text == "":
        return None
    if len(text) < 6:
        raise ValueError(f"time {text!r}")
    _check_number(text, True)
    if text.find(".") not in (-1, 6) or text[0] == "-":
        raise ValueError(f"time {text!r}")
    hour = int(text[0:2])
    minute = int(text[2:4])
    second = float(text[4:])
    if hour > 23 or minute > 59 or second < 0 or second >= 61:
        raise ValueError(f"time {text!r}")
    return hour, minute, second


def parse_date(text):
    """`ddmmyy` to (year, month, day), None if empty.

    Two-digit years: 80-99 are 1980-1999 (GPS began in 1980), the rest 20xx.
    """
    if text == "":
        return None
    if len(text) != 6:
        raise ValueError(f"date {text!r}")
    _check_number(text, False)
    if text[0] == "-":
        raise ValueError(f"date {text!r}")
    day = int(text[0:2])
    month = int(text[2:4])
    yy = int(text[4:6])
    year = 1900 + yy if yy >= 80 else 2000 + yy
    if month < 1 or month > 12 or day < 1 or day > days_in_month(year, month):
        raise ValueError(f"date {text!r}")
    return year, month, day


def _decode_rmc(fields, out):
    if len(fields) < 12:
        raise ValueError(f"RMC has {len(fields)} fields, expected at least 12")
    status = fields[2]
    if status not in ("A", "V"):
        raise ValueError(f"RMC status {status!r}")
    mode = fields[12] if len(fields) > 12 else ""
    out["valid"] = status == "A" and mode != "N"
    out["latitude"] = parse_coordinate(fields[3], fields[4], 90)
    out["longitude"] = parse_coordinate(fields[5], fields[6], 180)
    knots = _num(fields[7])
    out["speed_kmh"] = None if knots is None else knots * 1.852
    out["course"] = _num(fields[8])
    hms = parse_time(fields[1])
    ymd = parse_date(fields[9])
    out["time"] = hms
    out["date"] = ymd
    out["epoch"] = None if hms is None or ymd is None else epoch_seconds(ymd[0], ymd[1], ymd[2], hms[0], hms[1], hms[2])
    out["mode"] = mode


def _decode_gga(fields, out):
    if len(fields) < 15:
        raise ValueError(f"GGA has {len(fields)} fields, expected 15")
    quality = _int(fields[6])
    out["quality"] = 0 if quality is None else quality
    # 1-5: GPS, DGPS, PPS, RTK fixed, RTK float; 6 is dead reckoning, 7 manual, 8 simulation
    out["valid"] = 1 <= out["quality"] <= 5
    out["time"] = parse_time(fields[1])
    out["latitude"] = parse_coordinate(fields[2], fields[3], 90)
    out["longitude"] = parse_coordinate(fields[4], fields[5], 180)
    out["satellites"] = _int(fields[7])
    out["hdop"] = _num(fields[8])
    out["altitude"] = _num(fields[9])
    if out["altitude"] is not None and fields[10] not in ("M", ""):
        raise ValueError(f"GGA altitude unit {fields[10]!r}")
    out["geoid_separation"] = _num(fields[11])


def _is_hex(b):
    return 0x30 <= b <= 0x39 or 0x41 <= b <= 0x46 or 0x61 <= b <= 0x66


def decode_sentence(line):
    """Decode one sentence (bytes, with or without `$` and CR LF): (kind, data)."""
    if line[:1] == b"$":
        line = line[1:]
    while line[-1:] in (b"\n", b"\r"):
        line = line[:-1]
    for b in line:
        if b < 0x20 or b > 0x7E:
            return CHECKSUM, f"NMEA sentence with non-printable byte {b:02X}"
    star = line.rfind(b"*")
    if star < 0:
        return CHECKSUM, "NMEA sentence without checksum"
    body = line[:star]
    given = line[star + 1 :]
    expected = -1
    if len(given) == 2 and _is_hex(given[0]) and _is_hex(given[1]):
        expected = int(given.decode(), 16)
    if expected != checksum(body):
        return CHECKSUM, f"NMEA checksum {given.decode()}, computed {checksum(body):02X}"
    fields = body.decode().split(",")
    address = fields[0]
    if len(address) < 3:
        return FORMAT, f"NMEA address {address!r}"
    if address[0] == "P":
        talker, kind = "P", address[1:]
    else:
        talker, kind = address[0:2], address[2:]
    out = {"type": kind, "talker": talker}
    try:
        if kind == "RMC":
            _decode_rmc(fields, out)
        elif kind == "GGA":
            _decode_gga(fields, out)
    except OverflowError as exc:
        return RANGE, f"NMEA {address}: {exc}"
    except ValueError as exc:
        return FORMAT, f"NMEA {address}: {exc}"
    return FRAME, out


def _parse(buf, i):
    limit = i + MAX_SENTENCE
    nl = buf.find(b"\n", i + 1, limit)
    inner = buf.find(b"$", i + 1, limit if nl < 0 else nl)
    if inner >= 0:
        return LENGTH, inner, f"NMEA sentence cut short after {inner - i} characters"
    if nl < 0:
        if len(buf) >= limit:
            return LENGTH, limit, f"NMEA sentence without end within {MAX_SENTENCE} characters"
        return NEED_MORE, 0, None
    kind, data = decode_sentence(buf[i : nl + 1])
    return kind, nl + 1, data


def scan(buf):
    """Decode every sentence in `buf`: (events, rest) -- see drivers.codecs.scanning."""
    return scan_stream(buf, _SYNC, _parse)


# Public for tools that need where frames start and end (diag serial sniff):
# scan_stream(buf, SYNC, parse_at) with a wrapper around parse_at.
SYNC = _SYNC
parse_at = _parse
