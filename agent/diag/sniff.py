"""Which bytes of a captured serial stream the known parsers recognise.

The codecs' own parse functions (drivers.codecs.*: SDS011, PMS5003, NMEA,
MaxBotix; CRC-checked Modbus RTU) are run at every sync position through
drivers.codecs.scanning.scan_stream, recording where each frame starts and
ends, so the hex dump can mark them. Nothing is re-parsed here.
"""

from __future__ import annotations

from typing import Any

from drivers.codecs import maxbotix, nmea, pms5003, sds011
from drivers.codecs.modbus_crc import check_rtu_frame, rtu_request_length, rtu_response_length
from drivers.codecs.scanning import FRAME, GARBAGE, scan_stream

STREAM_CODECS = {"sds011": sds011, "pms5003": pms5003, "nmea": nmea, "maxbotix": maxbotix}


def _codec_frames(buf: bytes, name: str, mod: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def parse(b: bytes, i: int) -> Any:
        kind, end, data = mod.parse_at(b, i)
        if kind is not None and kind != GARBAGE:
            found.append({"start": i, "end": max(end, i + 1), "codec": name, "kind": kind, "data": data})
        return kind, end, data

    scan_stream(buf, mod.SYNC, parse)
    return found


def _modbus_frames(buf: bytes) -> list[dict[str, Any]]:
    out = []
    i = 0
    while i < len(buf) - 3:
        hit = None
        for role, length_of in (("request", rtu_request_length), ("response", rtu_response_length)):
            n = length_of(buf[i:])
            if n > 3 and i + n <= len(buf) and check_rtu_frame(buf[i : i + n]):
                hit = {"start": i, "end": i + n, "codec": "modbus", "kind": FRAME, "data": {"role": role, "unit": buf[i], "function": buf[i + 1]}}
                break
        if hit:
            out.append(hit)
            i = hit["end"]
        else:
            i += 1
    return out


def find_frames(buf: bytes, codecs: list[str]) -> list[dict[str, Any]]:
    """Frames and broken frames found by each codec, by position; valid frames win overlaps."""
    hits: list[dict[str, Any]] = []
    for name in codecs:
        hits += _modbus_frames(buf) if name == "modbus" else _codec_frames(buf, name, STREAM_CODECS[name])
    kept: list[dict[str, Any]] = []
    for h in sorted(hits, key=lambda h: (h["kind"] != FRAME, h["start"])):
        if any(k["kind"] == FRAME and k["start"] < h["end"] and h["start"] < k["end"] for k in kept):
            continue  # inside a valid frame of some codec: a false sync
        kept.append(h)
    # Errors of a codec that recognised nothing are noise from its sync byte
    # occurring in other data, unless no codec recognised anything at all.
    speaking = {h["codec"] for h in kept if h["kind"] == FRAME}
    if speaking:
        kept = [h for h in kept if h["kind"] == FRAME or h["codec"] in speaking]
    return sorted(kept, key=lambda h: h["start"])


def summary(buf: bytes, frames: list[dict[str, Any]]) -> dict[str, Any]:
    good = [f for f in frames if f["kind"] == FRAME]
    covered = sum(f["end"] - f["start"] for f in good)
    by_codec: dict[str, int] = {}
    errors: dict[str, int] = {}
    for f in frames:
        if f["kind"] == FRAME:
            by_codec[f["codec"]] = by_codec.get(f["codec"], 0) + 1
        else:
            key = f"{f['codec']} {f['kind']}"
            errors[key] = errors.get(key, 0) + 1
    return {"bytes": len(buf), "frames": by_codec, "errors": errors, "unrecognised_bytes": len(buf) - covered}


def describe(frame: dict[str, Any]) -> str:
    data = frame["data"]
    if frame["kind"] != FRAME:
        return f"{frame['kind']}: {data}"
    if isinstance(data, dict):
        return ", ".join(f"{k}={v}" for k, v in data.items() if not isinstance(v, bytes | bytearray))
    return str(data)


def hexdump(buf: bytes, frames: list[dict[str, Any]], style: Any, width: int = 16) -> str:
    owner: dict[int, dict[str, Any]] = {}
    for f in frames:
        for i in range(f["start"], min(f["end"], len(buf))):
            owner.setdefault(i, f)
    lines = []
    for off in range(0, len(buf), width):
        chunk = buf[off : off + width]
        cells = []
        for j, b in enumerate(chunk):
            f = owner.get(off + j)
            cells.append(style(f"{b:02X}", "ok" if f and f["kind"] == FRAME else "broken" if f else None))
        pad = "   " * (width - len(chunk))
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        starts = [f for f in frames if off <= f["start"] < off + width]
        mark = "  ".join(f"<{f['codec']} {'frame' if f['kind'] == FRAME else f['kind']}@{f['start'] - off}>" for f in starts)
        lines.append(f"{off:06X}  {' '.join(cells)}{pad}  {text:<{width}}  {mark}".rstrip())
    return "\n".join(lines)
