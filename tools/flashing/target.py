"""Where an image goes, and whether it may go there.

A target is a block device (an SD card or USB SSD) or an image file. Block
devices are checked through /sys/block and /proc/mounts: never the system
disk, never anything mounted, never read-only or too small, and only
removable or USB devices unless forced. `sysfs` and `mounts` are parameters so
tests can describe machines that they are not running on.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import FlashError

SYSFS = "/sys"
PROC_MOUNTS = "/proc/mounts"
SYSTEM_MOUNTS = ("/", "/boot", "/boot/efi", "/boot/firmware", "/usr", "/var", "/home")


class Target:
    def __init__(self, path: str, kind: str, size: int | None, serial: str, model: str, removable: bool) -> None:
        self.path = path
        self.kind = kind  # "device" or "file"
        self.size = size
        self.serial = serial
        self.model = model
        self.removable = removable

    def describe(self) -> str:
        if self.kind == "file":
            return f"image file {self.path}"
        size = f"{self.size / 1e9:.1f} GB" if self.size else "unknown size"
        kind = "removable" if self.removable else "NOT removable"
        serial = f", serial {self.serial}" if self.serial else ""
        return f"{self.path}: {self.model or 'disk'}, {size}, {kind}{serial}"


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _mounted_sources(mounts: str) -> dict[str, str]:
    """Device -> mount point for every mounted device."""
    result: dict[str, str] = {}
    try:
        lines = Path(mounts).read_text().splitlines()
    except OSError:
        return result
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0].startswith("/dev/"):
            source = os.path.realpath(fields[0]) if os.path.exists(fields[0]) else fields[0]
            result[source] = fields[1].replace("\\040", " ")
    return result


def _device_serial(block: Path) -> str:
    """SD cards report a serial on the MMC device; USB readers and SSDs on the USB device."""
    for name in ("device/serial", "device/wwid"):
        value = _read(block / name)
        if value:
            return value
    try:
        here = (block / "device").resolve()
    except OSError:
        return ""
    for parent in [here, *here.parents][:8]:
        value = _read(parent / "serial")
        if value:
            return value
    return ""


def inspect_block_device(name: str, sysfs: str = SYSFS, mounts: str = PROC_MOUNTS, need: int = 0, force: bool = False) -> Target:
    """Check /dev/<name> is safe to overwrite with `need` bytes; FlashError otherwise."""
    block = Path(sysfs) / "block" / name
    dev = f"/dev/{name}"
    if not block.is_dir():
        if (Path(sysfs) / "class" / "block" / name / "partition").exists():
            raise FlashError(f"{dev} is a partition", "give the whole device (e.g. /dev/sdb, /dev/mmcblk0), not a partition")
        raise FlashError(f"{dev} is not a disk this machine knows", "list disks with `lsblk -d -o NAME,SIZE,RM,MODEL`")
    partitions = [p.name for p in block.iterdir() if (p / "partition").exists()]
    mounted = _mounted_sources(mounts)
    holders = [dev] + [f"/dev/{p}" for p in partitions]
    for device in holders:
        mount_point = mounted.get(device)
        if mount_point in SYSTEM_MOUNTS:
            raise FlashError(f"{dev} holds this computer's system ({device} is mounted on {mount_point})", "pick the SD card or USB disk; check with `lsblk`")
    busy = [f"{d} on {mounted[d]}" for d in holders if d in mounted]
    if busy:
        raise FlashError(f"{dev} is mounted ({', '.join(busy)})", f"unmount it first: sudo umount {' '.join(d.split(' on ')[0] for d in busy)}")
    if _read(block / "ro") == "1":
        raise FlashError(f"{dev} is read-only", "slide the SD card's lock switch to unlocked, or use another card")
    size = int(_read(block / "size") or 0) * 512
    if need and size < need:
        raise FlashError(f"{dev} is too small: {size / 1e9:.2f} GB for a {need / 1e9:.2f} GB image", "use a larger card (8 GB or more)")
    resolved = str((block / "device").resolve()) if (block / "device").exists() else ""
    removable = _read(block / "removable") == "1" or "/usb" in resolved or name.startswith("mmcblk")
    if not removable and not force:
        raise FlashError(f"{dev} is not a removable or USB disk", "check it is the card you mean (lsblk); pass --force to write an internal disk")
    model = " ".join(filter(None, (_read(block / "device/vendor"), _read(block / "device/model"), _read(block / "device/name"))))
    return Target(dev, "device", size, _device_serial(block), model, removable)


def check_target(path: str, need: int, force: bool = False, sysfs: str = SYSFS, mounts: str = PROC_MOUNTS) -> Target:
    """Classify a --target and refuse unsafe ones before anything is written."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise FlashError(f"cannot look at {path}: {exc.strerror}", "check the target path") from exc
    if st is not None and stat.S_ISBLK(st.st_mode):
        real = os.path.realpath(path)
        return inspect_block_device(os.path.basename(real), sysfs, mounts, need, force)
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise FlashError(f"{path} is neither a block device nor a regular file", "give /dev/sdX or an image file path")
    if path.startswith("/dev/"):
        raise FlashError(f"{path} does not exist", "insert the card and check its name with `lsblk`")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise FlashError(f"the directory for {path} does not exist", "create it or pick another path")
    vfs = os.statvfs(parent)
    if vfs.f_flag & os.ST_RDONLY:
        raise FlashError(f"{parent} is on a read-only file system", "write the image somewhere writable")
    if st is not None and not st.st_mode & 0o222:
        raise FlashError(
            f"{path} is read-only (mode {stat.S_IMODE(st.st_mode):04o})", "pick another file name or make it writable if you really mean to replace it"
        )
    if not os.access(parent if st is None else path, os.W_OK):
        raise FlashError(f"no permission to write {path}", "pick a directory you can write to")
    free = vfs.f_bavail * vfs.f_frsize + (st.st_size if st is not None else 0)
    if free < need:
        raise FlashError(f"not enough space for {path}: {free / 1e9:.2f} GB free for a {need / 1e9:.2f} GB image", "free some space or write elsewhere")
    return Target(path, "file", None, "", "", False)
