"""Nova Fitness SDS011 particulate sensor: data frames and command frames.

Laser Dust Sensor Control Protocol V1.3: the sensor sends 10-byte frames
  AA C0 PM25_lo PM25_hi PM10_lo PM10_hi ID_lo ID_hi CS AB
once a second in active mode; CS is the low byte of the sum of the six data
bytes. Values are in tenths of ug/m3. Replies to commands use AA C5 with the
same shape. Commands from the host are 19 bytes:
  AA B4 cmd d1..d12 FF FF CS AB   (CS = low byte of sum of bytes 2..16)

MicroPython-compatible: no typing, no dataclasses.
"""

from drivers.codecs.scanning import CHECKSUM, FRAME, GARBAGE, LENGTH, NEED_MORE, RANGE, hexstr, scan_stream

HEAD = 0xAA
TAIL = 0xAB
DATA_CMD = 0xC0
REPLY_CMD = 0xC5
FRAME_LEN = 10
COMMAND_LEN = 19
# The datasheet's measuring range; a frame above it is a corrupted or failing sensor.
MAX_UG_M3 = 999.9

_SYNC = b"\xaa"

# Command ids (byte 2 of a host frame) and their sub-commands.
CMD_REPORTING_MODE = 2
CMD_QUERY = 4
CMD_DEVICE_ID = 5
CMD_SLEEP_WORK = 6
CMD_WORKING_PERIOD = 8
CMD_FIRMWARE = 7


def checksum(data):
    return sum(data) & 0xFF


def build_command(cmd, data=b"", device_id=0xFFFF):
    """A 19-byte host frame; device_id 0xFFFF addresses every sensor on the line."""
    body = bytearray(15)
    body[0] = cmd
    for k in range(min(len(data), 12)):
        body[1 + k] = data[k]
    body[13] = device_id & 0xFF
    body[14] = (device_id >> 8) & 0xFF
    return bytes(bytearray([HEAD, 0xB4]) + body + bytearray([checksum(body), TAIL]))


def query_command(device_id=0xFFFF):
    """Ask for one data frame (used in query reporting mode)."""
    return build_command(CMD_QUERY, b"", device_id)


def sleep_command(sleep=True, device_id=0xFFFF):
    """Put the sensor (fan and laser) to sleep, or wake it with sleep=False."""
    return build_command(CMD_SLEEP_WORK, bytes([1, 0 if sleep else 1]), device_id)


def reporting_mode_command(query_mode, device_id=0xFFFF):
    """Switch between active reporting (frames every second) and query mode."""
    return build_command(CMD_REPORTING_MODE, bytes([1, 1 if query_mode else 0]), device_id)


def working_period_command(minutes, device_id=0xFFFF):
    """0 = continuous; 1..30 = one measurement every n minutes (saves the laser)."""
    return build_command(CMD_WORKING_PERIOD, bytes([1, minutes & 0xFF]), device_id)


def decode_frame(frame):
    """Decode one complete 10-byte frame: (kind, detail_or_dict)."""
    if len(frame) != FRAME_LEN:
        return LENGTH, f"SDS011 frame has {len(frame)} bytes, expected 10"
    if frame[0] != HEAD or frame[9] != TAIL:
        return LENGTH, "SDS011 frame without AA..AB framing: " + hexstr(frame)
    if checksum(frame[2:8]) != frame[8]:
        return CHECKSUM, f"SDS011 checksum {frame[8]:02X}, computed {checksum(frame[2:8]):02X}"
    device_id = frame[6] | (frame[7] << 8)
    if frame[1] == REPLY_CMD:
        return FRAME, {"type": "reply", "command": frame[2], "data": bytes(frame[3:6]), "device_id": device_id}
    if frame[1] != DATA_CMD:
        return LENGTH, f"SDS011 frame of unknown type {frame[1]:02X}"
    pm2_5 = (frame[2] | (frame[3] << 8)) / 10.0
    pm10 = (frame[4] | (frame[5] << 8)) / 10.0
    if pm2_5 > MAX_UG_M3 or pm10 > MAX_UG_M3:
        return RANGE, f"SDS011 PM2.5 {pm2_5:.1f} / PM10 {pm10:.1f} ug/m3 beyond the 999.9 range"
    return FRAME, {"type": "data", "pm2_5": pm2_5, "pm10": pm10, "device_id": device_id}


def _parse(buf, i):
    if len(buf) - i < 2:
        return NEED_MORE, 0, None
    if buf[i + 1] != DATA_CMD and buf[i + 1] != REPLY_CMD:
        return GARBAGE, 0, None
    if len(buf) - i < FRAME_LEN:
        return NEED_MORE, 0, None
    frame = buf[i : i + FRAME_LEN]
    kind, data = decode_frame(frame)
    if kind == CHECKSUM or kind == LENGTH:
        k = _find_header(buf, i + 1, i + FRAME_LEN)
        if k > 0:
            # A new header inside: this frame was cut short, not corrupted.
            return LENGTH, i + FRAME_LEN, f"SDS011 frame cut short after {k - i} bytes"
    return kind, i + FRAME_LEN, data


def _find_header(buf, start, end):
    k = buf.find(_SYNC, start, end)
    while k >= 0:
        if k + 1 >= len(buf) or buf[k + 1] == DATA_CMD or buf[k + 1] == REPLY_CMD:
            return k
        k = buf.find(_SYNC, k + 1, end)
    return -1


def scan(buf):
    """Decode every frame in `buf`: (events, rest) -- see drivers.codecs.scanning."""
    return scan_stream(buf, _SYNC, _parse)


def encode_frame(pm2_5, pm10, device_id=0x1234):
    """A data frame as the sensor sends it (used by emulators and tests)."""
    a = int(round(pm2_5 * 10))
    b = int(round(pm10 * 10))
    data = bytes([a & 0xFF, (a >> 8) & 0xFF, b & 0xFF, (b >> 8) & 0xFF, device_id & 0xFF, (device_id >> 8) & 0xFF])
    return bytes([HEAD, DATA_CMD]) + data + bytes([checksum(data), TAIL])


# Public for tools that need where frames start and end (diag serial sniff):
# scan_stream(buf, SYNC, parse_at) with a wrapper around parse_at.
SYNC = _SYNC
parse_at = _parse
