"""Human output: tables line up, colours only when wanted, decoding tables, sniffing marks."""

from __future__ import annotations

import io

from agent.diag.modbus_tools import decode_all
from agent.diag.render import Style, colour_enabled, status_screen, table, visible_len
from agent.diag.sniff import find_frames, hexdump, summary
from drivers.codecs import modbus_registers as regs
from drivers.codecs import nmea, sds011
from drivers.codecs.modbus_crc import build_rtu_frame


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_respects_no_color_and_non_terminals(monkeypatch: object) -> None:
    import os

    os.environ.pop("NO_COLOR", None)
    assert colour_enabled(Tty()) and not colour_enabled(io.StringIO())
    os.environ["NO_COLOR"] = "1"
    try:
        assert not colour_enabled(Tty())
    finally:
        del os.environ["NO_COLOR"]


def test_table_columns_line_up_with_and_without_colour() -> None:
    for style in (Style(True), Style(False)):
        out = table(["device", "state"], [["meter-1", ("OFFLINE", "broken")], ["a", ("online", "ok")]], style).splitlines()
        plain = [line.replace("\x1b[31;1m", "").replace("\x1b[32m", "").replace("\x1b[0m", "").replace("\x1b[1m", "") for line in out]
        assert plain[0].index("state") == plain[1].index("OFFLINE") == plain[2].index("online")
        assert visible_len(out[1]) == len(plain[1])
        assert ("\x1b[31;1m" in out[1]) is style.colour


def test_status_screen_lists_findings_worst_first_with_hints() -> None:
    st = {
        "gateway": "gw", "site": "s", "health": "broken", "uptime": 3700, "pid": 1,
        "findings": [
            {"level": "broken", "area": "device", "subject": "meter", "summary": "offline", "hint": "check wiring"},
            {"level": "ok", "area": "outbox", "subject": "outbox", "summary": "0 waiting", "hint": ""},
        ],
        "devices": {"meter": {"driver": "modbus", "bus": "b", "online": False, "polls": 3, "error_counts": {"timeout": 3}, "last_error": "timeout: x | last frames: y"}},
        "system": {}, "versions": {"agent": "0.1.0"},
    }  # fmt: skip
    out = status_screen(st, Style(False))
    assert "health BROKEN" in out and "up 1h01m" in out
    assert out.index("FAIL  device meter") < out.index("OK    outbox")
    assert "-> check wiring" in out and "last frames" not in out


def test_decode_all_shows_the_right_value_in_the_right_order_only() -> None:
    words = regs.encode(230.5, "float32", "big", "little")  # a meter with swapped words
    d = decode_all(words)
    by_order = {r["order"]: r["float32"] for r in d["rows"] if r["offset"] == 0}
    assert by_order["CDAB"] == 230.5
    assert all(v != 230.5 for k, v in by_order.items() if k != "CDAB")
    assert d["hex"] == [f"{w:04X}" for w in words]
    text = decode_all(regs.encode("SDM120", "string", length=3))
    assert text["ascii"] == "SDM120"


def test_sniff_marks_frames_of_several_codecs_and_broken_ones() -> None:
    good = sds011.encode_frame(10.0, 20.0)
    bad = bytearray(sds011.encode_frame(11.0, 21.0))
    bad[8] ^= 0xFF  # checksum broken
    gps = nmea.build_sentence("GPRMC,120000,A,4807.038,N,01131.000,E,0.0,0.0,010125,,") if hasattr(nmea, "build_sentence") else b""
    if isinstance(gps, str):
        gps = gps.encode()
    rtu = build_rtu_frame(5, b"\x04\x00\x01\x00\x02")
    buf = b"\x00junk" + good + bytes(bad) + gps + rtu
    frames = find_frames(buf, ["sds011", "nmea", "modbus"])
    kinds = [(f["codec"], f["kind"]) for f in frames]
    assert ("sds011", "frame") in kinds and ("sds011", "checksum") in kinds and ("modbus", "frame") in kinds
    if gps:
        assert ("nmea", "frame") in kinds
    s = summary(buf, frames)
    assert s["frames"]["sds011"] == 1 and s["errors"] == {"sds011 checksum": 1} and s["unrecognised_bytes"] >= 5
    dump = hexdump(buf, frames, Style(False))
    assert "<sds011 frame@5>" in dump and "<sds011 checksum@" in dump
