"""A base image opened for customisation: partition table, boot partition copy, byte stream.

The bytes before the boot partition are kept in memory and the boot partition
is copied to a scratch file where the FAT code edits it; everything after it
streams straight from the source. Partition 2 and beyond are never parsed or
changed, only copied.
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


class OpenedImage:
    def __init__(self, source: ImageSource, stream: ImageStream, table: PartitionTable, head: bytes,
                 boot: Partition, boot_file: BinaryIO, scratch: str) -> None:
        self.source = source
        self.stream = stream
        self.table = table
        self.head = head
        self.boot = boot
        self.boot_file = boot_file
        self.scratch = scratch
        self.volume = FatVolume(boot_file)

    @property
    def size(self) -> int:
        return self.source.size

    def chunks(self, block_size: int) -> Iterator[bytes]:
        """The customised image, front to back, in blocks of block_size (the last may be short)."""
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
        self.boot_file.seek(0)
        while True:
            data = self.boot_file.read(block_size - len(pending) if pending else block_size)
            if not data:
                break
            yield from emit(data)
        remaining = self.source.size - self.boot.end
        while remaining > 0:
            want = min(block_size - len(pending) if pending else block_size, remaining)
            data = self.stream.read(want)
            if not data:
                raise FlashError(f"{self.source.path} ends early: {self.source.size - remaining} of "
                                 f"{self.source.size} bytes", REDOWNLOAD)
            remaining -= len(data)
            yield from emit(data)
        if pending:
            yield bytes(pending)

    def close(self) -> None:
        self.boot_file.close()
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
            raise FlashError(f"{source.path} is truncated: its partitions need {table.end} bytes but it holds "
                             f"{source.size}", REDOWNLOAD)
        boot = table.boot_partition()
        if boot.start > MAX_HEAD:
            raise FlashError(f"the boot partition starts {boot.start >> 20} MiB into the image; expected near the start",
                             "use a Raspberry Pi OS image")
        head = first + stream.read_exact(boot.start - SECTOR)
        boot_path = os.path.join(scratch, "boot.fat")
        boot_file = open(boot_path, "w+b")
        remaining = boot.size
        while remaining:
            data = stream.read_exact(min(remaining, 8 << 20))
            boot_file.write(data)
            remaining -= len(data)
        boot_file.flush()
        return OpenedImage(source, stream, table, head, boot, boot_file, scratch)
    except BaseException:
        stream.close()
        shutil.rmtree(scratch, ignore_errors=True)
        raise
