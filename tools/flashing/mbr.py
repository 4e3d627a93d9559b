"""MBR partition tables as Raspberry Pi OS images carry them.

The images have two primary partitions: a FAT32 boot partition and an ext4
root. The tool only needs to find the boot partition and to know where the
image ends, so it can refuse truncated files before touching a target.
"""

from __future__ import annotations

import struct

from .errors import FlashError

SECTOR = 512
FAT_TYPES = {0x01: "FAT12", 0x04: "FAT16", 0x06: "FAT16", 0x0B: "FAT32", 0x0C: "FAT32 (LBA)", 0x0E: "FAT16 (LBA)"}
LINUX_TYPES = {0x83: "Linux"}
EXTENDED_TYPES = {0x05, 0x0F, 0x85}
GPT_PROTECTIVE = 0xEE


class Partition:
    __slots__ = ("number", "type_id", "start_lba", "sectors", "bootable")

    def __init__(self, number: int, type_id: int, start_lba: int, sectors: int, bootable: bool) -> None:
        self.number = number
        self.type_id = type_id
        self.start_lba = start_lba
        self.sectors = sectors
        self.bootable = bootable

    @property
    def start(self) -> int:
        return self.start_lba * SECTOR

    @property
    def size(self) -> int:
        return self.sectors * SECTOR

    @property
    def end(self) -> int:
        return self.start + self.size

    @property
    def is_fat(self) -> bool:
        return self.type_id in FAT_TYPES

    @property
    def type_name(self) -> str:
        return FAT_TYPES.get(self.type_id) or LINUX_TYPES.get(self.type_id) or f"type {self.type_id:#04x}"

    def __repr__(self) -> str:
        return f"Partition({self.number}, {self.type_name}, start={self.start}, size={self.size})"


class PartitionTable:
    def __init__(self, partitions: list[Partition], disk_id: int) -> None:
        self.partitions = partitions
        self.disk_id = disk_id

    @property
    def end(self) -> int:
        """Byte offset just past the last partition: the least an image must hold."""
        return max((p.end for p in self.partitions), default=SECTOR)

    def boot_partition(self) -> Partition:
        for part in self.partitions:
            if part.is_fat:
                return part
        raise FlashError("the image has no FAT boot partition", "use a Raspberry Pi OS image (.img, .img.xz or .zip) as downloaded from raspberrypi.com")


def parse_mbr(sector: bytes) -> PartitionTable:
    """The primary partitions of an MBR sector; raises FlashError if it is not one."""
    if len(sector) < SECTOR:
        raise FlashError("the image is shorter than one sector", "the file is empty or truncated; download the image again")
    if sector[510:512] != b"\x55\xaa":
        raise FlashError(
            "the image does not start with a partition table (MBR signature missing)", "the file is corrupt or not a disk image; download the image again"
        )
    partitions: list[Partition] = []
    for index in range(4):
        entry = sector[446 + index * 16 : 446 + (index + 1) * 16]
        status, type_id = entry[0], entry[4]
        start_lba, sectors = struct.unpack_from("<II", entry, 8)
        if type_id == 0 or sectors == 0:
            continue
        if type_id == GPT_PROTECTIVE:
            raise FlashError("the image uses a GPT partition table, which this tool does not handle", "use a Raspberry Pi OS image; they use MBR")
        if type_id in EXTENDED_TYPES:
            continue
        if status not in (0x00, 0x80) or start_lba == 0:
            raise FlashError(f"partition {index + 1} of the image has an invalid entry", "the file is corrupt; download the image again")
        partitions.append(Partition(index + 1, type_id, start_lba, sectors, status == 0x80))
    if not partitions:
        raise FlashError("the image's partition table is empty", "the file is corrupt or not a disk image; download the image again")
    ordered = sorted(partitions, key=lambda p: p.start)
    for left, right in zip(ordered, ordered[1:], strict=False):
        if left.end > right.start:
            raise FlashError(f"partitions {left.number} and {right.number} of the image overlap", "the file is corrupt; download the image again")
    disk_id = struct.unpack_from("<I", sector, 440)[0]
    return PartitionTable(partitions, disk_id)
