"""The FAT writer against file systems made by mkfs.vfat and read back by mtools and fsck.fat."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import pytest
from flash_support import needs_disk_tools, run
from hypothesis import given, settings
from hypothesis import strategies as st

from tools.flashing.errors import FatError
from tools.flashing.fat import FatVolume
from tools.flashing.image import PagedOverlay

pytestmark = needs_disk_tools


def make_fs(path: Path, fat: int, mb: int) -> Path:
    with open(path, "wb") as f:
        f.truncate(mb << 20)
    run("mkfs.vfat", "-F", str(fat), "-n", "BOOTFS", str(path))
    return path


def mread(image: Path, name: str) -> bytes:
    return subprocess.run(["mtype", "-i", str(image), f"::{name}"], check=True, capture_output=True).stdout


def fsck_clean(image: Path) -> str:
    result = subprocess.run(["fsck.fat", "-n", "-V", str(image)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.parametrize("fat,mb", [(32, 40), (16, 20)])
def test_files_written_here_read_back_by_mtools_and_fsck_is_clean(tmp_path: Path, fat: int, mb: int) -> None:
    image = make_fs(tmp_path / "fs.img", fat, mb)
    (tmp_path / "cmdline.txt").write_text("root=PARTUUID=1-02 rootwait\n")
    run("mcopy", "-i", str(image), str(tmp_path / "cmdline.txt"), "::cmdline.txt")
    big = os.urandom(3_000_001)
    with open(image, "r+b") as f:
        vol = FatVolume(f)
        assert vol.fat_type == fat
        assert vol.read_file("CMDLINE.TXT") == b"root=PARTUUID=1-02 rootwait\n"
        vol.write_file("cmdline.txt", b"root=PARTUUID=1-02 rootwait systemd.run=/x\n")
        vol.makedirs("edge-agent/tls")
        vol.write_file("edge-agent/wheels.bin", big)
        vol.write_file("user-data", b"#cloud-config\n")
        vol.write_file("README", b"upper-case 8.3 name, no long-name slots")
        vol.write_file("edge-agent/empty", b"")
        for i in range(60):  # more than one cluster of directory entries
            vol.write_file(f"edge-agent/tls/a-rather-long-file-name-{i:02d}.pem", f"pem {i}".encode())
        vol.remove("edge-agent/tls/a-rather-long-file-name-07.pem")
        vol.flush()
    fsck_clean(image)
    assert mread(image, "cmdline.txt") == b"root=PARTUUID=1-02 rootwait systemd.run=/x\n"
    assert mread(image, "edge-agent/wheels.bin") == big
    assert mread(image, "user-data") == b"#cloud-config\n"
    assert mread(image, "edge-agent/empty") == b""
    assert mread(image, "edge-agent/tls/a-rather-long-file-name-59.pem") == b"pem 59"
    listing = run("mdir", "-b", "-i", str(image), "::edge-agent/tls").stdout
    assert "a-rather-long-file-name-07.pem" not in listing
    assert listing.count(".pem") == 59
    # our reader agrees with what mtools wrote earlier and with itself after reopening
    with open(image, "rb") as f:
        vol = FatVolume(f, writable=False)
        names = {e.name for e in vol.listdir("")}
        assert {"cmdline.txt", "edge-agent", "user-data", "README"} <= names
        assert vol.read_file("edge-agent/wheels.bin") == big


def test_free_count_in_fsinfo_matches_after_changes(tmp_path: Path) -> None:
    image = make_fs(tmp_path / "fs.img", 32, 40)
    with open(image, "r+b") as f:
        vol = FatVolume(f)
        before = vol.free_clusters()
        vol.write_file("a.bin", b"x" * (vol.cluster_size * 3 + 1))
        vol.flush()
        assert vol.free_clusters() == before - 4
    # fsck.fat -n reports FSInfo mismatches as errors; a clean run means the count is right
    fsck_clean(image)


def test_full_partition_is_a_clear_error(tmp_path: Path) -> None:
    image = make_fs(tmp_path / "fs.img", 16, 20)
    with open(image, "r+b") as f:
        vol = FatVolume(f)
        with pytest.raises(FatError, match="boot partition is full"):
            vol.write_file("huge.bin", b"\0" * (25 << 20))


def test_not_a_fat_file_system(tmp_path: Path) -> None:
    junk = tmp_path / "junk.img"
    junk.write_bytes(os.urandom(1 << 20))
    with open(junk, "rb") as f, pytest.raises(FatError, match="no valid FAT boot sector"):
        FatVolume(f)


def test_invalid_names_are_refused(tmp_path: Path) -> None:
    image = make_fs(tmp_path / "fs.img", 32, 40)
    with open(image, "r+b") as f:
        vol = FatVolume(f)
        with pytest.raises(ValueError):
            vol.write_file("bad:name", b"")


def test_fat32_below_the_spec_cluster_minimum_is_still_fat32(tmp_path: Path) -> None:
    # mkfs.fat -F 32 on 256 MiB gives 65403 clusters; Linux and the Pi firmware read it as FAT32
    image = tmp_path / "fs.img"
    with open(image, "wb") as f:
        f.truncate(256 << 20)
    run("mkfs.vfat", "-F", "32", "-s", "8", str(image))
    with open(image, "r+b") as f:
        vol = FatVolume(f)
        assert vol.fat_type == 32 and vol.cluster_count < 65525
        vol.makedirs("edge-agent")
        vol.write_file("edge-agent/setup.sh", b"#!/bin/bash\n")
        vol.flush()
    fsck_clean(image)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20_000), st.binary(min_size=1, max_size=9000)), max_size=12))
def test_overlay_reads_like_a_bytearray_with_the_same_writes(writes: list[tuple[int, bytes]]) -> None:
    base = bytes(range(256)) * 100  # 25,600 bytes
    expected = bytearray(base)
    overlay = PagedOverlay(io.BytesIO(b"x" * 512 + base), 512, len(base))
    for pos, data in writes:
        data = data[: len(base) - pos]
        if not data:
            continue
        overlay.seek(pos)
        overlay.write(data)
        expected[pos : pos + len(data)] = data
    overlay.seek(0)
    assert overlay.read() == bytes(expected)
    assert overlay.patch(1000, base[1000:9000]) == bytes(expected[1000:9000])
