"""MaxBotix ultrasonic rangefinders (MB7xxx, HRXL, XL) TTL/RS-232 output.

The sensor sends `R` + ASCII digits + CR about 6 to 10 times a second: four
digits in millimetres on the HRXL / "mm" models, three digits in inches or
centimetres on older ones (the configuration says which). The model's minimum
(e.g. R0300) is reported for anything closer and its maximum (R5000, R9999 or
R0765 depending on the model) when no target is seen.

fill_percent turns a distance into how full a bin is, given the depth of the
bin and how far above its rim the sensor is mounted.

MicroPython-compatible: no typing, no dataclasses.
"""

from drivers.codecs.scanning import FORMAT, FRAME, LENGTH, NEED_MORE, scan_stream

_SYNC = b"R"
MAX_DIGITS = 5
MM_PER_INCH = 25.4
# How each configured unit maps onto millimetres.
UNIT_TO_MM = {"mm": 1.0, "cm": 10.0, "in": MM_PER_INCH}


def decode_frame(frame):
    """Decode `R1234\\r` (bytes): (kind, data)."""
    if frame[:1] != b"R" or frame[-1:] != b"\r":
        return LENGTH, "range frame without R...CR framing"
    digits = frame[1:-1]
    if len(digits) == 0 or len(digits) > MAX_DIGITS:
        return LENGTH, f"range frame with {len(digits)} digits"
    for b in digits:
        if b < 0x30 or b > 0x39:
            return FORMAT, f"range frame with non-digit {b:02X}"
    return FRAME, {"type": "range", "range": int(digits.decode()), "digits": len(digits)}


def _parse(buf, i):
    n = len(buf)
    k = i + 1
    while k < n and k - i <= MAX_DIGITS + 1:
        b = buf[k]
        if b == 0x0D:
            if k == i + 1:
                return LENGTH, k + 1, "range frame without digits"
            kind, data = decode_frame(buf[i : k + 1])
            return kind, k + 1, data
        if b < 0x30 or b > 0x39:
            if b == 0x52:
                # The `R` of the next frame: this one was cut short. End
                # before it so the scanner starts there.
                return LENGTH, k, f"range frame cut short after {k - i - 1} digits"
            # A damaged character: the frame runs to its CR, if that is near.
            cr = buf.find(b"\r", k, i + MAX_DIGITS + 2)
            return FORMAT, (cr + 1 if cr >= 0 else k), f"range frame with non-digit {b:02X}"
        k += 1
    if k - i > MAX_DIGITS + 1:
        return LENGTH, k, f"range frame with more than {MAX_DIGITS} digits"
    return NEED_MORE, 0, None


def scan(buf):
    """Decode every range frame in `buf`: (events, rest) -- see drivers.codecs.scanning."""
    return scan_stream(buf, _SYNC, _parse)


def to_mm(value, unit):
    """A range in the sensor's unit ("mm", "cm" or "in") in millimetres."""
    return value * UNIT_TO_MM[unit]


def fill_percent(distance_mm, bin_depth_mm, sensor_offset_mm):
    """How full a bin is, as (percent, out_of_range).

    The sensor looks down from `sensor_offset_mm` above the rim of a bin
    `bin_depth_mm` deep: an empty bin reads offset + depth, a full one reads
    offset. A reading outside that span is clamped to 0 or 100 and flagged,
    because it means a lid, a bag above the rim or a missed echo, not a level.
    """
    level = bin_depth_mm - (distance_mm - sensor_offset_mm)
    percent = 100.0 * level / bin_depth_mm
    if percent > 100.0:
        return 100.0, True
    if percent < 0.0:
        return 0.0, True
    return percent, False


def encode_frame(value, digits=4):
    """A range frame as the sensor sends it (emulators and tests)."""
    text = str(int(value))
    if len(text) < digits:
        text = "0" * (digits - len(text)) + text
    return ("R" + text + "\r").encode()


# Public for tools that need where frames start and end (diag serial sniff):
# scan_stream(buf, SYNC, parse_at) with a wrapper around parse_at.
SYNC = _SYNC
parse_at = _parse
