"""A small FAT16/FAT32 reader and writer that works on a file object.

The boot partition of a Raspberry Pi OS image is FAT32. Customising it through
this module needs no mount, no loop device and no root, so the tool runs on an
installer's laptop. Only what the tool needs is supported: read, create,
replace and delete files, create directories, list. Both FAT copies and the
FAT32 FSInfo free count are kept consistent so `fsck.fat` finds nothing.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Iterator
from typing import BinaryIO

from .errors import FatError
from .fat_names import (
    ATTR_ARCHIVE,
    ATTR_DIRECTORY,
    DELETED,
    ENTRY_SIZE,
    DirEntry,
    exact_short_name,
    lfn_entries,
    make_short_name,
    pack_entry,
    parse_directory,
    short_display,
    update_entry,
    validate_long_name,
)

FAT16_EOC = 0xFFFF
FAT32_EOC = 0x0FFFFFFF
FAT32_MASK = 0x0FFFFFFF
HINT = "the boot partition looks damaged; download the image again or pick another file"


class FatVolume:
    """A FAT16/32 file system starting at `offset` inside `f` (opened r+b or rb)."""

    def __init__(self, f: BinaryIO, offset: int = 0, writable: bool = True) -> None:
        self.f = f
        self.offset = offset
        self.writable = writable
        f.seek(offset)
        boot = f.read(512)
        if len(boot) < 512 or boot[510:512] != b"\x55\xaa":
            raise FatError("the boot partition has no valid FAT boot sector", HINT)
        (
            self.bytes_per_sector,
            self.sectors_per_cluster,
            self.reserved,
            self.num_fats,
            self.root_entries,
            total16,
            _media,
            fat16_size,
            _spt,
            _heads,
            _hidden,
            total32,
        ) = struct.unpack_from("<HBHBHHBHHHII", boot, 11)
        bps, spc = self.bytes_per_sector, self.sectors_per_cluster
        if bps not in (512, 1024, 2048, 4096) or spc == 0 or spc & (spc - 1) or not self.num_fats or not self.reserved:
            raise FatError("the boot partition's FAT parameters are invalid", HINT)
        self.total_sectors = total16 or total32
        self.fat_sectors = fat16_size or struct.unpack_from("<I", boot, 36)[0]
        root_dir_sectors = (self.root_entries * ENTRY_SIZE + bps - 1) // bps
        self.root_dir_start = self.reserved + self.num_fats * self.fat_sectors
        self.data_start = self.root_dir_start + root_dir_sectors
        if self.data_start >= self.total_sectors:
            raise FatError("the boot partition's FAT layout does not fit its size", HINT)
        self.cluster_count = (self.total_sectors - self.data_start) // spc
        self.cluster_size = bps * spc
        # Like Linux, trust the BPB (no 16-bit FAT size means FAT32) over the cluster count:
        # mkfs.fat makes FAT32 volumes with slightly fewer clusters than the spec's minimum.
        if fat16_size == 0:
            self.fat_type = 32
        elif self.cluster_count >= 4085:
            self.fat_type = 16
        else:
            raise FatError("the boot partition is FAT12, which is not supported", "use a Raspberry Pi OS image; its boot partition is FAT32")
        self.root_cluster = struct.unpack_from("<I", boot, 44)[0] if self.fat_type == 32 else 0
        self.fsinfo_sector = struct.unpack_from("<H", boot, 48)[0] if self.fat_type == 32 else 0
        self.label = (boot[71:82] if self.fat_type == 32 else boot[43:54]).decode("latin-1").strip()
        self._load_fat()
        self._dirty_fat = False
        self._next_free = 2

    # -- raw access ---------------------------------------------------------
    def _read_at(self, pos: int, size: int) -> bytes:
        self.f.seek(self.offset + pos)
        data = self.f.read(size)
        if len(data) != size:
            raise FatError("the boot partition is truncated", HINT)
        return data

    def _write_at(self, pos: int, data: bytes) -> None:
        if not self.writable:
            raise FatError("the FAT volume was opened read-only")
        self.f.seek(self.offset + pos)
        self.f.write(data)

    def _cluster_pos(self, cluster: int) -> int:
        return (self.data_start + (cluster - 2) * self.sectors_per_cluster) * self.bytes_per_sector

    def _load_fat(self) -> None:
        raw = self._read_at(self.reserved * self.bytes_per_sector, self.fat_sectors * self.bytes_per_sector)
        self.fat = array("I" if self.fat_type == 32 else "H")
        if self.fat.itemsize != self.fat_type // 8:
            raise FatError("this platform's array sizes are unexpected")
        self.fat.frombytes(raw[: (self.cluster_count + 2) * self.fat.itemsize])
        if len(self.fat) < self.cluster_count + 2:
            raise FatError("the boot partition's FAT is shorter than its cluster count", HINT)

    # -- FAT chains ---------------------------------------------------------
    def _entry(self, cluster: int) -> int:
        value = self.fat[cluster]
        return value & FAT32_MASK if self.fat_type == 32 else value

    def _set(self, cluster: int, value: int) -> None:
        if self.fat_type == 32:
            value = (self.fat[cluster] & ~FAT32_MASK & 0xFFFFFFFF) | value
        self.fat[cluster] = value
        self._dirty_fat = True

    def _is_end(self, value: int) -> bool:
        return value >= (0x0FFFFFF8 if self.fat_type == 32 else 0xFFF8)

    def chain(self, first: int) -> list[int]:
        if first < 2:
            return []
        clusters: list[int] = []
        cluster = first
        while True:
            if not 2 <= cluster < self.cluster_count + 2:
                raise FatError(f"the boot partition has a broken cluster chain at {cluster:#x}", HINT)
            clusters.append(cluster)
            if len(clusters) > self.cluster_count:
                raise FatError("the boot partition has a looping cluster chain", HINT)
            nxt = self._entry(cluster)
            if self._is_end(nxt):
                return clusters
            cluster = nxt

    def free_clusters(self) -> int:
        return sum(1 for c in range(2, self.cluster_count + 2) if self._entry(c) == 0)

    def free_bytes(self) -> int:
        return self.free_clusters() * self.cluster_size

    def _allocate(self, count: int) -> list[int]:
        found: list[int] = []
        total = self.cluster_count
        start = self._next_free if 2 <= self._next_free < total + 2 else 2
        for i in range(total):
            cluster = 2 + (start - 2 + i) % total
            if self._entry(cluster) == 0:
                found.append(cluster)
                if len(found) == count:
                    break
        if len(found) < count:
            need = count * self.cluster_size
            raise FatError(
                f"the boot partition is full ({need} bytes needed, {self.free_bytes()} free)",
                "leave out wheels the gateway does not need or use a smaller wheelhouse",
            )
        eoc = FAT32_EOC if self.fat_type == 32 else FAT16_EOC
        for here, nxt in zip(found, found[1:] + [None], strict=True):
            self._set(here, nxt if nxt is not None else eoc)
        self._next_free = found[-1] + 1
        return found

    def _free_chain(self, first: int) -> None:
        for cluster in self.chain(first):
            self._set(cluster, 0)

    def _runs(self, clusters: list[int]) -> Iterator[tuple[int, int]]:
        """(first cluster, length) of each contiguous run, so data moves in big writes."""
        if not clusters:
            return
        start, length = clusters[0], 1
        for cluster in clusters[1:]:
            if cluster == start + length:
                length += 1
            else:
                yield start, length
                start, length = cluster, 1
        yield start, length

    def _read_clusters(self, clusters: list[int]) -> bytes:
        parts = [self._read_at(self._cluster_pos(c), n * self.cluster_size) for c, n in self._runs(clusters)]
        return b"".join(parts)

    def _write_clusters(self, clusters: list[int], data: bytes) -> None:
        data = data.ljust(len(clusters) * self.cluster_size, b"\x00")
        pos = 0
        for first, count in self._runs(clusters):
            size = count * self.cluster_size
            self._write_at(self._cluster_pos(first), data[pos : pos + size])
            pos += size

    # -- directories --------------------------------------------------------
    def _dir_raw(self, cluster: int) -> bytes:
        if cluster == 0:  # FAT16 fixed root directory
            return self._read_at(self.root_dir_start * self.bytes_per_sector, self.root_entries * ENTRY_SIZE)
        return self._read_clusters(self.chain(cluster))

    def _dir_write(self, cluster: int, raw: bytes) -> None:
        if cluster == 0:
            self._write_at(self.root_dir_start * self.bytes_per_sector, raw)
        else:
            self._write_clusters(self.chain(cluster), raw)

    def _root(self) -> int:
        return self.root_cluster if self.fat_type == 32 else 0

    def _split(self, path: str) -> list[str]:
        return [part for part in path.replace("\\", "/").split("/") if part]

    def _find(self, dir_cluster: int, name: str) -> DirEntry | None:
        wanted = name.casefold()
        for entry in parse_directory(self._dir_raw(dir_cluster)):
            if entry.name.casefold() == wanted or short_display(entry.short).casefold() == wanted:
                return entry
        return None

    def _lookup_dir(self, parts: list[str]) -> int:
        cluster = self._root()
        for part in parts:
            entry = self._find(cluster, part)
            if entry is None or not entry.is_dir:
                raise FileNotFoundError("/".join(parts))
            cluster = entry.cluster
        return cluster

    def stat(self, path: str) -> DirEntry | None:
        parts = self._split(path)
        if not parts:
            return None
        try:
            parent = self._lookup_dir(parts[:-1])
        except FileNotFoundError:
            return None
        return self._find(parent, parts[-1])

    def exists(self, path: str) -> bool:
        return self.stat(path) is not None

    def listdir(self, path: str = "") -> list[DirEntry]:
        entries = parse_directory(self._dir_raw(self._lookup_dir(self._split(path))))
        return [e for e in entries if e.name not in (".", "..")]

    def walk(self, path: str = "") -> Iterator[tuple[str, DirEntry]]:
        """Every file and directory below `path` as (path, entry), depth first."""
        for entry in self.listdir(path):
            full = f"{path}/{entry.name}" if path else entry.name
            yield full, entry
            if entry.is_dir:
                yield from self.walk(full)

    def read_file(self, path: str) -> bytes:
        entry = self.stat(path)
        if entry is None or entry.is_dir:
            raise FileNotFoundError(path)
        if entry.size == 0:
            return b""
        clusters = self.chain(entry.cluster)
        if len(clusters) * self.cluster_size < entry.size:
            raise FatError(f"{path} on the boot partition is shorter than its recorded size", HINT)
        return self._read_clusters(clusters)[: entry.size]

    def _insert_entry(self, dir_cluster: int, name: str, attr: int, cluster: int, size: int) -> None:
        validate_long_name(name)
        raw = bytearray(self._dir_raw(dir_cluster))
        existing = parse_directory(bytes(raw))
        taken = {e.short for e in existing}
        short = exact_short_name(name)
        if short is None or short in taken:
            short = make_short_name(name, taken)
            slots = lfn_entries(name, short) + [pack_entry(short, attr, cluster, size)]
        else:
            slots = [pack_entry(short, attr, cluster, size)]
        needed = len(slots)
        while True:
            start = self._free_run(raw, needed)
            if start is not None:
                break
            if dir_cluster == 0:
                raise FatError("the boot partition's root directory is full", "this FAT16 image cannot take more files in its root")
            new = self._allocate(1)[0]
            self._set(self.chain(dir_cluster)[-1], new)
            self._write_clusters([new], b"")
            raw.extend(b"\x00" * self.cluster_size)
        for i, slot in enumerate(slots):
            pos = (start + i) * ENTRY_SIZE
            raw[pos : pos + ENTRY_SIZE] = slot
        self._dir_write(dir_cluster, bytes(raw))

    @staticmethod
    def _free_run(raw: bytearray, needed: int) -> int | None:
        run_start, run = 0, 0
        for index in range(len(raw) // ENTRY_SIZE):
            first = raw[index * ENTRY_SIZE]
            if first == 0x00:
                # everything after the end marker is free too
                remaining = len(raw) // ENTRY_SIZE - index
                if run + remaining >= needed:
                    return index - run
                return None
            if first == DELETED:
                if run == 0:
                    run_start = index
                run += 1
                if run == needed:
                    return run_start
            else:
                run = 0
        return None

    def mkdir(self, path: str) -> None:
        parts = self._split(path)
        parent = self._lookup_dir(parts[:-1])
        found = self._find(parent, parts[-1])
        if found is not None:
            if found.is_dir:
                return
            raise FatError(f"{path} exists on the boot partition and is not a directory")
        cluster = self._allocate(1)[0]
        dot = pack_entry(b".          ", ATTR_DIRECTORY, cluster, 0)
        dotdot = pack_entry(b"..         ", ATTR_DIRECTORY, parent if parent != self._root() else 0, 0)
        self._write_clusters([cluster], dot + dotdot)
        self._insert_entry(parent, parts[-1], ATTR_DIRECTORY, cluster, 0)

    def makedirs(self, path: str) -> None:
        parts = self._split(path)
        for depth in range(1, len(parts) + 1):
            self.mkdir("/".join(parts[:depth]))

    def write_file(self, path: str, data: bytes) -> None:
        """Create or replace a file; its parent directory must exist."""
        parts = self._split(path)
        if not parts:
            raise FatError("cannot write a file without a name")
        parent = self._lookup_dir(parts[:-1])
        existing = self._find(parent, parts[-1])
        if existing is not None and existing.is_dir:
            raise FatError(f"{path} is a directory on the boot partition")
        clusters_needed = (len(data) + self.cluster_size - 1) // self.cluster_size
        if existing is not None and existing.cluster:
            self._free_chain(existing.cluster)
        clusters = self._allocate(clusters_needed) if clusters_needed else []
        self._write_clusters(clusters, data)
        first = clusters[0] if clusters else 0
        if existing is None:
            self._insert_entry(parent, parts[-1], ATTR_ARCHIVE, first, len(data))
            return
        raw = bytearray(self._dir_raw(parent))
        pos = existing.slot * ENTRY_SIZE
        raw[pos : pos + ENTRY_SIZE] = update_entry(bytes(raw[pos : pos + ENTRY_SIZE]), first, len(data))
        self._dir_write(parent, bytes(raw))

    def remove(self, path: str) -> None:
        parts = self._split(path)
        parent = self._lookup_dir(parts[:-1])
        entry = self._find(parent, parts[-1])
        if entry is None:
            raise FileNotFoundError(path)
        if entry.is_dir and self.listdir(path):
            raise FatError(f"{path} on the boot partition is not empty")
        if entry.cluster:
            self._free_chain(entry.cluster)
        raw = bytearray(self._dir_raw(parent))
        for slot in range(entry.first_slot, entry.slot + 1):
            raw[slot * ENTRY_SIZE] = DELETED
        self._dir_write(parent, bytes(raw))

    # -- persistence --------------------------------------------------------
    def flush(self) -> None:
        """Write every FAT copy and the FSInfo free count; call once after changes."""
        if not self._dirty_fat:
            return
        raw = self.fat.tobytes()
        for copy in range(self.num_fats):
            self._write_at((self.reserved + copy * self.fat_sectors) * self.bytes_per_sector, raw)
        if self.fat_type == 32 and self.fsinfo_sector not in (0, 0xFFFF):
            pos = self.fsinfo_sector * self.bytes_per_sector
            info = bytearray(self._read_at(pos, 512))
            if info[0:4] == b"RRaA" and info[484:488] == b"rrAa":
                struct.pack_into("<II", info, 488, self.free_clusters(), self._next_free)
                self._write_at(pos, bytes(info))
        self.f.flush()
        self._dirty_fat = False
