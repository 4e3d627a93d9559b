"""A base image opened for customisation: partition table, boot partition overlay, byte stream.

The bytes before the boot partition are kept in memory. The FAT code edits the
boot partition through an overlay that keeps changed pages in memory and reads
the rest from the image (a plain .img) or from a scratch copy (.xz and .zip
cannot seek). While writing, the boot partition streams from the source with
the changed pages laid over it; everything after it streams straight through.
Partition 2 and beyond are never parsed or changed, only copied.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

from .errors import FlashError
from .fat import FatVolume
from .mbr import SECTOR, Partition, PartitionTable, parse_mbr
from .source import REDOWNLOAD, ImageSource, ImageStream

MAX_HEAD = 256 << 20  # bytes before the boot partition that are held in memory
PAGE = 4096


class PagedOverlay:
    """A file-like view of `size` bytes at `offset` in `base`; writes stay in memory pages."""

    def __init__(self, base: BinaryIO, offset: int, size: int) -> None:
        self.base = base
        self.offset = offset
        self.size = size
        self.pages: dict[int, bytes] = {}
        self.pos = 0

    def seek(self, pos: int, whence: int = 0) -> int:
        self.pos = pos if whence == 0 else (self.pos + pos if whence == 1 else self.size + pos)
        return self.pos

    def _base(self, start: int, length: int) -> bytes:
        self.base.seek(self.offset + start)
        return self.base.read(length)

    def patch(self, start: int, data: bytes) -> bytes:
        """Lay the changed pages over `data`, which holds the base bytes from `start` on."""
        if not self.pages:
            return data
        end = start + len(data)
        first, last = start // PAGE, (end - 1) // PAGE
        touched = [p for p in self.pages if first <= p <= last] if len(self.pages) < last - first else [p for p in range(first, last + 1) if p in self.pages]
        if not touched:
            return data
        out = bytearray(data)
        for page in touched:
            lo = max(page * PAGE, start)
            hi = min(page * PAGE + PAGE, end)
            out[lo - start : hi - start] = self.pages[page][lo - page * PAGE : hi - page * PAGE]
        return bytes(out)

    def read(self, n: int = -1) -> bytes:
        end = self.size if n < 0 else min(self.pos + n, self.size)
        data = self.patch(self.pos, self._base(self.pos, max(0, end - self.pos)))
        self.pos = end
        return data

    def write(self, data: bytes) -> int:
        end = self.pos + len(data)
        if end > self.size:
            raise OSError(f"write beyond the boot partition ({end} > {self.size})")
        pos = self.pos
        while pos < end:
            page = pos // PAGE
            page_start = page * PAGE
            current = self.pages.get(page)
            if current is None:
                current = self._base(page_start, PAGE).ljust(PAGE, b"\0")
            cut = min(end, page_start + PAGE)
            self.pages[page] = current[: pos - page_start] + data[pos - self.pos : cut - self.pos] + current[cut - page_start :]
            pos = cut
        self.pos = end
        return len(data)

    def flush(self) -> None:
        pass


class OpenedImage:
    def __init__(
        self,
        source: ImageSource,
        stream: ImageStream,
        table: PartitionTable,
        head: bytes,
        boot: Partition,
        base: BinaryIO,
        base_offset: int,
        streamed_boot: bool,
        scratch: str,
    ) -> None:
        self.source = source
        self.stream = stream
        self.table = table
        self.head = head
        self.boot = boot
        self.base = base
        self.streamed_boot = streamed_boot  # True: the boot bytes still come from the stream
        self.scratch = scratch
        self.overlay = PagedOverlay(base, base_offset, boot.size)
        self.volume = FatVolume(self.overlay)  # type: ignore[arg-type]

    @property
    def size(self) -> int:
        return self.source.size

    @property
    def replayable(self) -> bool:
        """A plain .img can be read a second time cheaply, for verification by comparison."""
        return self.source.kind == "img"

    def replay(self, block_size: int) -> Iterator[bytes]:
        """The same customised bytes again, from a fresh read of the .img and the same overlay."""
        stream = self.source.stream()
        try:
            stream.read_exact(len(self.head))
            yield from self.chunks(block_size, stream)
        finally:
            stream.close()

    def chunks(self, block_size: int, stream: ImageStream | None = None) -> Iterator[bytes]:
        """The customised image, front to back, in blocks of block_size (the last may be short)."""
        stream = stream or self.stream
        pending = bytearray()

        def emit(data: bytes) -> Iterator[bytes]:
            nonlocal pending
            if not pending and len(data) == block_size:
                yield data
                return
            pending += data
            while len(pending) >= block_size:
                yield bytes(pending[:block_size])
                del pending[:block_size]

        yield from emit(self.head)
        pos = 0
        while pos < self.boot.size:
            want = min(block_size - len(pending) if pending else block_size, self.boot.size - pos)
            if self.streamed_boot:
                data = stream.read_exact(want)
            else:
                self.base.seek(pos)
                data = self.base.read(want)
            yield from emit(self.overlay.patch(pos, data))
            pos += len(data)
        remaining = self.source.size - self.boot.end
        while remaining > 0:
            want = min(block_size - len(pending) if pending else block_size, remaining)
            data = stream.read(want)
            if not data:
                raise FlashError(f"{self.source.path} ends early: {self.source.size - remaining} of {self.source.size} bytes", REDOWNLOAD)
            remaining -= len(data)
            yield from emit(data)
        if pending:
            yield bytes(pending)

    def close(self) -> None:
        self.base.close()
        self.stream.close()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def __enter__(self) -> OpenedImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_image(source: ImageSource, scratch_dir: str | None = None) -> OpenedImage:
    """Read the partition table and copy the boot partition; FlashError for anything unusable."""
    stream = source.stream()
    scratch = tempfile.mkdtemp(prefix="edge-flash-", dir=scratch_dir)
    try:
        first = stream.read_exact(SECTOR) if source.size >= SECTOR else stream.read(SECTOR)
        table = parse_mbr(first)
        if source.size < table.end:
            raise FlashError(f"{source.path} is truncated: its partitions need {table.end} bytes but it holds {source.size}", REDOWNLOAD)
        boot = table.boot_partition()
        if boot.start > MAX_HEAD:
            raise FlashError(f"the boot partition starts {boot.start >> 20} MiB into the image; expected near the start", "use a Raspberry Pi OS image")
        head = first + stream.read_exact(boot.start - SECTOR)
        if source.kind == "img":
            # a plain image can be read at random: no copy, the stream carries the boot bytes later
            return OpenedImage(source, stream, table, head, boot, open(source.path, "rb"), boot.start, True, scratch)
        boot_file = open(os.path.join(scratch, "boot.fat"), "w+b")
        remaining = boot.size
        while remaining:
            data = stream.read_exact(min(remaining, 8 << 20))
            boot_file.write(data)
            remaining -= len(data)
        boot_file.flush()
        return OpenedImage(source, stream, table, head, boot, boot_file, 0, False, scratch)
    except BaseException:
        stream.close()
        shutil.rmtree(scratch, ignore_errors=True)
        raise
