"""Property-based fuzzing of the serial sensor stream scanners.

For every codec: random bytes and streams of real frames mutated the way a
serial line mutates them (bit flips, truncation, inserted and dropped bytes,
noise before and after) must give decoded frames or classified errors, never
an exception; the same frames must come out however the stream is chunked;
and a valid frame after any of that must be decoded. The one way a frame can
be lost is inherent to the protocols: corrupted bytes that happen to form a
frame with a matching checksum and end inside the next one. The test checks
that this, and only this, explains any frame it misses.

Deterministic (derandomize) so a failure reproduces; the example counts are
asserted so the figure in docs stays true.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.codecs import maxbotix, nmea, pms5003, scanning, sds011

# A random case is one example; a damaged case is one segment (noise, damaged
# frame, valid frame) of an example's stream.
RANDOM_EXAMPLES = 2_500
DAMAGED_EXAMPLES = 2_000
SEGMENTS_MAX = 8
DAMAGED_CASES = 7_500


def fuzz_settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


VALID_KINDS = (scanning.FRAME, *scanning.ERROR_KINDS)


# --- valid frames per codec ---------------------------------------------------
# Each frame's fields come from one binary draw: hypothesis spends most of its
# time per draw, and one draw of n bytes still explores every field value.

_SDS011_RAW = st.binary(min_size=6, max_size=6)
_PMS5003_RAW = st.binary(min_size=26, max_size=26)
_NMEA_RAW = st.binary(min_size=20, max_size=20)
_MAXBOTIX_RAW = st.binary(min_size=3, max_size=3)


@st.composite
def sds011_frames(draw: st.DrawFn) -> bytes:
    a, b, dev = struct.unpack(">3H", draw(_SDS011_RAW))
    return sds011.encode_frame((a % 10000) / 10, (b % 10000) / 10, dev)


@st.composite
def pms5003_frames(draw: st.DrawFn) -> bytes:
    words = struct.unpack(">13H", draw(_PMS5003_RAW))
    values = {name: words[k] % 1001 if name.startswith("pm") else words[k] for k, name in enumerate(pms5003.FIELDS)}
    return pms5003.encode_frame(values, words[12] >> 8, words[12] & 0xFF)


def _ddmm(value: float, width: int) -> str:
    degrees = int(value)
    minutes = (value - degrees) * 60
    return f"{degrees:0{width}d}{minutes:08.5f}"


@st.composite
def nmea_sentences(draw: st.DrawFn) -> bytes:
    r = draw(_NMEA_RAW)
    lat = int.from_bytes(r[0:4], "big") % 9_000_000 / 100_000
    lon = int.from_bytes(r[4:8], "big") % 18_000_000 / 100_000
    hh, mm, ss = r[8] % 24, r[9] % 60, r[10] % 60
    ns, ew = "NS"[r[11] & 1], "EW"[(r[11] >> 1) & 1]
    talker = ("GP", "GN", "GL")[r[12] % 3]
    if r[13] & 1:
        day, month, yy = 1 + r[14] % 28, 1 + r[15] % 12, r[16] % 100
        status = "AV"[r[17] & 1]
        body = f"{talker}RMC,{hh:02d}{mm:02d}{ss:02d}.00,{status},{_ddmm(lat, 2)},{ns},{_ddmm(lon, 3)},{ew},0.5,12.3,{day:02d}{month:02d}{yy:02d},,,A"
    else:
        q, sats = r[14] % 9, r[15] % 25
        alt = (int.from_bytes(r[16:18], "big") % 9400 - 400) / 10
        body = f"{talker}GGA,{hh:02d}{mm:02d}{ss:02d}.00,{_ddmm(lat, 2)},{ns},{_ddmm(lon, 3)},{ew},{q},{sats:02d},1.2,{alt},M,46.9,M,,"
    return nmea.build_sentence(body)


@st.composite
def maxbotix_frames(draw: st.DrawFn) -> bytes:
    r = draw(_MAXBOTIX_RAW)
    value = int.from_bytes(r[0:2], "big")
    if r[2] & 1:
        return maxbotix.encode_frame(value % 10000, 4)
    return maxbotix.encode_frame(value % 1000, 3)


CODECS: dict[str, tuple[Callable, st.SearchStrategy[bytes], int]] = {
    # name: (scan, valid frames, the longest remainder a scan may keep)
    "sds011": (sds011.scan, sds011_frames(), sds011.FRAME_LEN - 1),
    "pms5003": (pms5003.scan, pms5003_frames(), pms5003.FRAME_LEN - 1),
    "nmea": (nmea.scan, nmea_sentences(), nmea.MAX_SENTENCE),
    "maxbotix": (maxbotix.scan, maxbotix_frames(), maxbotix.MAX_DIGITS + 2),
}


# --- mutations -----------------------------------------------------------------
# A segment is noise, a damaged frame and a valid frame. One control draw of
# a few bytes picks the damage and where it hits, for the reason given above.

_CONTROL = st.binary(min_size=8, max_size=8)
_NOISE = st.binary(max_size=16)
_CUTS = st.binary(max_size=6)
DAMAGE = ("keep", "flip", "truncate", "insert", "delete", "noise", "splice", "drop")


def damage(frame: bytes, other: bytes, c: bytes, noise: bytes) -> bytes:
    out = bytearray(frame)
    op = DAMAGE[c[0] % len(DAMAGE)]
    k = c[1] % len(out)
    if op == "flip":
        for b in c[2 : 2 + 1 + c[5] % 3]:
            out[(k + b) % len(out)] ^= 1 << (b & 7)
    elif op == "truncate":
        del out[k:]
    elif op == "insert":
        out[k:k] = noise[: 1 + c[2] % 4] or b"\x00"
    elif op == "delete":
        del out[k : k + 1 + c[2] % 4]
    elif op == "noise":
        out = bytearray(noise) + out + bytearray(noise[::-1])
    elif op == "splice":
        out = out[:k] + bytearray(other[c[2] % len(other) :])
    elif op == "drop":
        out = bytearray()
    return bytes(out)


@st.composite
def segments(draw: st.DrawFn, frames: st.SearchStrategy[bytes]) -> tuple[bytes, bytes]:
    """(damaged bytes, the valid frame after them)."""
    frame = draw(frames)
    valid = draw(frames)
    noise = draw(_NOISE)
    c = draw(_CONTROL)
    before = (noise if c[6] & 1 else b"") + damage(frame, valid, c, noise)
    return before, valid


def chunks(data: bytes, cuts: bytes) -> list[bytes]:
    points = sorted({(c * len(data)) // 255 for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


def scan_all(scan: Callable, parts: list[bytes]) -> tuple[list, bytes]:
    events: list = []
    rest = b""
    for part in parts:
        new, rest = scan(rest + part)
        events += new
    return events, rest


def check_events(events: list, rest: bytes, max_rest: int) -> None:
    assert isinstance(rest, bytes)
    assert len(rest) <= max_rest, f"remainder of {len(rest)} bytes would grow without bound"
    for event in events:
        assert isinstance(event, tuple) and len(event) == 2
        assert event[0] in VALID_KINDS, event
        if event[0] == scanning.FRAME:
            assert isinstance(event[1], dict)
        else:
            assert isinstance(event[1], str) and event[1]


def straddles(scan: Callable, before: bytes, frame: bytes) -> bool:
    """Whether corrupted bytes before `frame` decode as a frame ending inside it."""
    base = len(scanning.frames_of(scan(before)[0]))
    return any(len(scanning.frames_of(scan(before + frame[:k])[0])) > base for k in range(1, len(frame)))


# --- the properties, per codec ---------------------------------------------------


@pytest.mark.parametrize("name", list(CODECS))
def test_random_bytes_never_raise_and_chunking_does_not_matter(name: str) -> None:
    scan, _, max_rest = CODECS[name]
    cases = [0]

    @fuzz_settings(RANDOM_EXAMPLES)
    @given(data=st.binary(max_size=300), cuts=_CUTS)
    def run(data: bytes, cuts: bytes) -> None:
        cases[0] += 1
        whole, rest = scan(data)
        check_events(whole, rest, max_rest)
        chunked, chunk_rest = scan_all(scan, chunks(data, cuts))
        check_events(chunked, chunk_rest, max_rest)
        assert scanning.frames_of(chunked) == scanning.frames_of(whole)
        assert chunk_rest == rest

    run()
    print(f"{name}: {cases[0]} random cases")
    assert cases[0] >= RANDOM_EXAMPLES


@pytest.mark.parametrize("name", list(CODECS))
def test_damaged_frames_are_classified_and_the_next_valid_frame_survives(name: str) -> None:
    scan, frames, max_rest = CODECS[name]
    cases = [0]
    swallowed = [0]

    @fuzz_settings(DAMAGED_EXAMPLES)
    @given(segs=st.lists(segments(frames), min_size=1, max_size=SEGMENTS_MAX), cuts=_CUTS)
    def run(segs: list[tuple[bytes, bytes]], cuts: bytes) -> None:
        stream = b"".join(before + valid for before, valid in segs)
        events, rest = scan_all(scan, chunks(stream, cuts))
        check_events(events, rest, max_rest)
        assert rest == b"", "a complete valid frame at the end must leave nothing pending"
        decoded = scanning.frames_of(events)
        # Every valid frame must come out, in order, among whatever the damaged
        # bytes decoded to; each segment is one case.
        pos = 0
        sent = b""
        for before, valid in segs:
            cases[0] += 1
            expected = scanning.frames_of(scan(valid)[0])
            assert len(expected) == 1, f"generator made an invalid frame: {valid!r}"
            sent += before
            while pos < len(decoded) and decoded[pos] != expected[0]:
                pos += 1
            if pos < len(decoded):
                pos += 1
            else:
                assert straddles(scan, sent, valid), f"valid frame lost after {sent[-80:]!r}"
                swallowed[0] += 1
            sent += valid

    run()
    print(f"{name}: {cases[0]} damaged-frame cases, {swallowed[0]} valid frames swallowed by a false frame")
    assert cases[0] >= DAMAGED_CASES
    assert RANDOM_EXAMPLES + DAMAGED_CASES >= 10_000, "at least 10,000 cases per codec across the two properties"
