"""FAT directory entries: 8.3 short names, long-name (VFAT) slots, timestamps.

Pure functions over bytes so the FAT volume code can stay about clusters and
chains. Windows, macOS and Linux all read these names; a name that fits 8.3 in
upper case is stored without long-name slots, everything else gets them.
"""

from __future__ import annotations

import struct
import time

ENTRY_SIZE = 32
ATTR_READ_ONLY = 0x01
ATTR_HIDDEN = 0x02
ATTR_SYSTEM = 0x04
ATTR_VOLUME_ID = 0x08
ATTR_DIRECTORY = 0x10
ATTR_ARCHIVE = 0x20
ATTR_LFN = 0x0F
DELETED = 0xE5
LFN_LAST = 0x40
CHARS_PER_LFN = 13

# name, attr, ntres, crt_tenth, crt_time, crt_date, acc_date, clus_hi, wrt_time, wrt_date, clus_lo, size
_ENTRY = struct.Struct("<11sBBBHHHHHHHI")
_SFN_SPECIAL = set("!#$%&'()-@^_`{}~")
_LFN_FORBIDDEN = set('"*/:<>?\\|')


class DirEntry:
    """One file or directory as found in a directory (long name resolved)."""

    __slots__ = ("name", "short", "attr", "cluster", "size", "slot", "first_slot", "wrt_time", "wrt_date")

    def __init__(self, name: str, short: bytes, attr: int, cluster: int, size: int, slot: int, first_slot: int, wrt_time: int = 0, wrt_date: int = 0) -> None:
        self.name = name
        self.short = short
        self.attr = attr
        self.cluster = cluster
        self.size = size
        self.slot = slot  # index of the 8.3 entry in the directory
        self.first_slot = first_slot  # index of its first long-name slot (== slot if none)
        self.wrt_time = wrt_time
        self.wrt_date = wrt_date

    @property
    def is_dir(self) -> bool:
        return bool(self.attr & ATTR_DIRECTORY)

    def __repr__(self) -> str:
        kind = "dir" if self.is_dir else f"{self.size} bytes"
        return f"DirEntry({self.name!r}, {kind}, cluster={self.cluster})"


def short_display(short: bytes) -> str:
    base = short[:8].decode("latin-1").rstrip()
    ext = short[8:].decode("latin-1").rstrip()
    return f"{base}.{ext}" if ext else base


def lfn_checksum(short: bytes) -> int:
    total = 0
    for byte in short:
        total = (((total & 1) << 7) + (total >> 1) + byte) & 0xFF
    return total


def validate_long_name(name: str) -> None:
    if not name or name in (".", "..") or len(name) > 255:
        raise ValueError(f"invalid FAT file name {name!r}")
    if any(ch in _LFN_FORBIDDEN or ord(ch) < 0x20 for ch in name):
        raise ValueError(f"FAT file names cannot contain {name!r}'s special characters")
    if name.endswith((" ", ".")):
        raise ValueError(f"FAT file names cannot end with a space or dot: {name!r}")


def _sfn_char(ch: str) -> str:
    if ch.isascii() and (ch.isalnum() or ch in _SFN_SPECIAL):
        return ch.upper()
    return "_"


def exact_short_name(name: str) -> bytes | None:
    """The 11-byte 8.3 name if `name` is a plain upper-case 8.3 name, else None."""
    if name.upper() != name or name.count(".") > 1:
        return None
    base, _, ext = name.partition(".")
    if not base or len(base) > 8 or len(ext) > 3:
        return None
    if any(_sfn_char(ch) != ch for ch in base + ext):
        return None
    return (base.ljust(8) + ext.ljust(3)).encode("ascii")


def make_short_name(name: str, taken: set[bytes]) -> bytes:
    """A unique 8.3 alias (e.g. USER-D~1) for a long name."""
    stripped = name.lstrip(". ")
    if "." in stripped:
        base, ext = stripped.rsplit(".", 1)
    else:
        base, ext = stripped, ""
    base = "".join(_sfn_char(ch) for ch in base.replace(" ", "").replace(".", "")) or "_"
    ext = "".join(_sfn_char(ch) for ch in ext.replace(" ", ""))[:3]
    for n in range(1, 1_000_000):
        tail = f"~{n}"
        candidate = (base[: 8 - len(tail)] + tail).ljust(8) + ext.ljust(3)
        raw = candidate.encode("ascii")
        if raw not in taken:
            return raw
    raise ValueError(f"no free short name for {name!r}")


def dos_timestamp(when: float | None = None) -> tuple[int, int]:
    """(time, date) in FAT's packed local-time format; FAT cannot store before 1980."""
    tm = time.localtime(time.time() if when is None else when)
    year = max(tm.tm_year, 1980)
    dos_time = (tm.tm_hour << 11) | (tm.tm_min << 5) | (tm.tm_sec // 2)
    dos_date = ((year - 1980) << 9) | (tm.tm_mon << 5) | tm.tm_mday
    return dos_time, dos_date


def pack_entry(short: bytes, attr: int, cluster: int, size: int, when: float | None = None) -> bytes:
    dos_time, dos_date = dos_timestamp(when)
    return _ENTRY.pack(short, attr, 0, 0, dos_time, dos_date, dos_date, cluster >> 16, dos_time, dos_date, cluster & 0xFFFF, size)


def update_entry(raw: bytes, cluster: int, size: int, when: float | None = None) -> bytes:
    fields = list(_ENTRY.unpack(raw))
    dos_time, dos_date = dos_timestamp(when)
    fields[6] = dos_date
    fields[7] = cluster >> 16
    fields[8] = dos_time
    fields[9] = dos_date
    fields[10] = cluster & 0xFFFF
    fields[11] = size
    return _ENTRY.pack(*fields)


def lfn_entries(name: str, short: bytes) -> list[bytes]:
    """Long-name slots for `name`, in on-disk order (last part first)."""
    units = name.encode("utf-16-le")
    chars = [units[i : i + 2] for i in range(0, len(units), 2)]
    if len(chars) % CHARS_PER_LFN:
        chars.append(b"\x00\x00")
    while len(chars) % CHARS_PER_LFN:
        chars.append(b"\xff\xff")
    checksum = lfn_checksum(short)
    count = len(chars) // CHARS_PER_LFN
    slots = []
    for index in range(count):
        part = chars[index * CHARS_PER_LFN : (index + 1) * CHARS_PER_LFN]
        order = index + 1 + (LFN_LAST if index == count - 1 else 0)
        slot = bytes([order]) + b"".join(part[0:5]) + bytes([ATTR_LFN, 0, checksum]) + b"".join(part[5:11]) + b"\x00\x00" + b"".join(part[11:13])
        slots.append(slot)
    slots.reverse()
    return slots


def _lfn_chars(slot: bytes) -> bytes:
    return slot[1:11] + slot[14:26] + slot[28:32]


def parse_directory(raw: bytes) -> list[DirEntry]:
    """Every live entry in a directory's bytes, with long names joined."""
    entries: list[DirEntry] = []
    pending: list[bytes] = []
    pending_start = -1
    pending_checksum = -1
    for slot_index in range(len(raw) // ENTRY_SIZE):
        slot = raw[slot_index * ENTRY_SIZE : (slot_index + 1) * ENTRY_SIZE]
        first = slot[0]
        if first == 0x00:
            break
        if first == DELETED:
            pending = []
            continue
        attr = slot[11]
        if attr & 0x3F == ATTR_LFN:
            if first & LFN_LAST:
                pending = [slot]
                pending_start = slot_index
                pending_checksum = slot[13]
            elif pending:
                pending.append(slot)
            continue
        fields = _ENTRY.unpack(slot)
        short = fields[0]
        if short[0] == 0x05:  # a real leading 0xE5 byte is stored as 0x05
            short = b"\xe5" + short[1:]
        if attr & ATTR_VOLUME_ID:
            pending = []
            continue
        name = short_display(short)
        first_slot = slot_index
        if pending and pending_checksum == lfn_checksum(fields[0]):
            units = b"".join(_lfn_chars(s) for s in reversed(pending))
            text = units.decode("utf-16-le", errors="replace")
            name = text.split("\x00", 1)[0]
            first_slot = pending_start
        elif fields[2] & 0x18:
            # NT case flags: lower-case base (0x08) and/or extension (0x10)
            base, _, ext = name.partition(".")
            base = base.lower() if fields[2] & 0x08 else base
            ext = ext.lower() if fields[2] & 0x10 else ext
            name = f"{base}.{ext}" if ext else base
        pending = []
        cluster = (fields[7] << 16) | fields[10]
        entries.append(DirEntry(name, fields[0], attr, cluster, fields[11], slot_index, first_slot, fields[8], fields[9]))
    return entries
