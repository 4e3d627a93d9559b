"""Every bad input gives exit code 2, a message saying what to do, and an untouched or unverified target."""

from __future__ import annotations

import lzma
import zipfile
from pathlib import Path

import pytest
from flash_support import BOOT_START, Kit, needs_disk_tools, run

from tools.flashing.cli import main
from tools.flashing.errors import FlashError
from tools.flashing.target import inspect_block_device

pytestmark = needs_disk_tools
SENTINEL = b"previous card content\n" * 1000


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    return Kit(tmp_path_factory.mktemp("bad"), "trixie")


def flash(kit: Kit, tmp: Path, capsys, *extra: str, image: Path | None = None, config: Path | None = None, target: Path | None = None) -> tuple[int, str, Path]:
    out = target or tmp / "card.img"
    if not out.exists():
        out.write_bytes(SENTINEL)
    code = main(kit.args(out, *extra, image=image, config=config) + ["--inventory", str(tmp / "inv")])
    captured = capsys.readouterr()
    return code, captured.err + captured.out, out


def test_truncated_img_is_refused_before_writing(kit: Kit, tmp_path: Path, capsys) -> None:
    short = tmp_path / "short.img"
    short.write_bytes(kit.image.read_bytes()[: 30 << 20])
    code, text, out = flash(kit, tmp_path, capsys, image=short)
    assert code == 2 and "is truncated" in text and "download the image again" in text
    assert out.read_bytes() == SENTINEL


def test_truncated_xz_is_refused_before_writing(kit: Kit, tmp_path: Path, capsys) -> None:
    data = lzma.compress(kit.image.read_bytes(), preset=0)
    cut = tmp_path / "cut.img.xz"
    cut.write_bytes(data[: len(data) // 2])
    code, text, out = flash(kit, tmp_path, capsys, image=cut)
    assert code == 2 and "not a complete .xz file" in text
    assert out.read_bytes() == SENTINEL


def test_corrupt_zip_is_reported_not_verified_and_card_has_no_partition_table(kit: Kit, tmp_path: Path, capsys) -> None:
    archive = tmp_path / "image.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as z:
        z.write(kit.image, "raspios.img")
    data = bytearray(archive.read_bytes())
    data[len(data) - (3 << 20)] ^= 0xFF  # flip a byte inside partition 2: only the CRC at the end can tell
    archive.write_bytes(bytes(data))
    code, text, out = flash(kit, tmp_path, capsys, image=archive)
    assert code == 2
    assert "NOT verified" in text and "has no partition table" in text and "Bad CRC-32" in text
    assert out.read_bytes()[:512] == bytes(512)  # cannot boot half-written
    rows = (tmp_path / "inv" / "inventory.csv").read_text()
    assert ",failed," in rows


def test_corrupt_xz_mid_stream_is_reported_not_verified(kit: Kit, tmp_path: Path, capsys) -> None:
    data = bytearray(lzma.compress(kit.image.read_bytes(), preset=0))
    data[len(data) * 3 // 4] ^= 0x55
    bad = tmp_path / "bad.img.xz"
    bad.write_bytes(bytes(data))
    code, text, out = flash(kit, tmp_path, capsys, image=bad)
    assert code == 2 and "NOT verified" in text and "is corrupt" in text
    assert out.read_bytes()[:512] == bytes(512)


def test_not_an_image_and_no_boot_partition(kit: Kit, tmp_path: Path, capsys) -> None:
    junk = tmp_path / "junk.img"
    junk.write_bytes(b"\x00" * (1 << 20))
    code, text, out = flash(kit, tmp_path, capsys, image=junk)
    assert code == 2 and "partition table" in text and out.read_bytes() == SENTINEL

    noboot = tmp_path / "noboot.img"
    noboot.write_bytes(kit.image.read_bytes())
    run("sfdisk", "--quiet", "--part-type", str(noboot), "1", "83")
    code, text, out = flash(kit, tmp_path, capsys, image=noboot)
    assert code == 2 and "no FAT boot partition" in text and out.read_bytes() == SENTINEL

    damaged = tmp_path / "damaged.img"
    data = bytearray(kit.image.read_bytes())
    data[BOOT_START * 512 + 510 : BOOT_START * 512 + 512] = b"\0\0"  # FAT boot sector signature
    damaged.write_bytes(bytes(data))
    code, text, out = flash(kit, tmp_path, capsys, image=damaged)
    assert code == 2 and "no valid FAT boot sector" in text and out.read_bytes() == SENTINEL


def test_old_release_is_refused(tmp_path: Path, capsys) -> None:
    from flash_support import build_image

    old = Kit(tmp_path, "trixie")
    image = build_image(tmp_path / "bullseye.img", "bullseye")
    code, text, out = flash(old, tmp_path, capsys, image=image)
    assert code == 2 and "older than Raspberry Pi OS Bookworm" in text and out.read_bytes() == SENTINEL


def test_invalid_config_names_file_line_and_key(kit: Kit, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(kit.config.read_text().replace('site = "district-07"', 'site = "District 07"'))
    code, text, out = flash(kit, tmp_path, capsys, config=bad)
    assert code == 2 and "gateway config is invalid; nothing was written" in text
    assert "gateway.site" in text and f"{bad}:" in text
    assert out.read_bytes() == SENTINEL


def test_missing_ca_files(kit: Kit, tmp_path: Path, capsys) -> None:
    empty = tmp_path / "ca"
    empty.mkdir()
    (empty / "ca.crt").write_bytes((kit.ca / "ca.crt").read_bytes())
    argv = kit.args(tmp_path / "card.img") + ["--inventory", str(tmp_path / "inv")]
    argv[argv.index("--ca-dir") + 1] = str(empty)
    (tmp_path / "card.img").write_bytes(SENTINEL)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "CA private key is missing" in err and "--csr-dir" in err
    assert (tmp_path / "card.img").read_bytes() == SENTINEL
    argv[argv.index("--ca-dir") + 1] = str(tmp_path / "nowhere")
    assert main(argv) == 2 and "does not exist" in capsys.readouterr().err


def test_read_only_target_file(kit: Kit, tmp_path: Path, capsys) -> None:
    target = tmp_path / "card.img"
    target.write_bytes(SENTINEL)
    target.chmod(0o444)
    code, text, out = flash(kit, tmp_path, capsys, target=target)
    assert code == 2 and "read-only" in text and out.read_bytes() == SENTINEL


def test_missing_wheels_name_what_first_boot_would_lack(kit: Kit, tmp_path: Path, capsys) -> None:
    house = tmp_path / "house"
    house.mkdir()
    for wheel in kit.wheelhouse.iterdir():
        if not wheel.name.startswith("pydantic_core"):
            (house / wheel.name).write_bytes(wheel.read_bytes())
    (house / "pydantic_core-2.50.0-cp313-cp313-manylinux_2_17_x86_64.whl").write_bytes(b"PK")
    code, text, out = flash(kit, tmp_path, capsys, "--wheelhouse", str(house))
    assert code == 2 and "lacks wheels for Python 3.13 on aarch64: pydantic-core" in text
    assert "pip download" in text and out.read_bytes() == SENTINEL


def test_no_ssh_key_means_no_card(kit: Kit, tmp_path: Path, capsys) -> None:
    priv = tmp_path / "id_ed25519"
    priv.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n")
    argv = kit.args(tmp_path / "card.img") + ["--inventory", str(tmp_path / "inv")]
    argv[argv.index("--ssh-key") + 1] = str(priv)
    assert main(argv) == 2
    assert "is a private key" in capsys.readouterr().err


def test_second_card_for_same_gateway_needs_replace(kit: Kit, tmp_path: Path, capsys) -> None:
    assert flash(kit, tmp_path, capsys)[0] == 0
    code, text, _ = flash(kit, tmp_path, capsys, target=tmp_path / "second.img")
    assert code == 2 and "already has a verified card" in text and "--replace" in text


# --- block devices, described through a fake /sys and /proc/mounts ---------------------------


def fake_sys(tmp: Path, name: str = "sdb", removable: str = "1", ro: str = "0", sectors: int = 62_333_952, usb: bool = True) -> Path:
    sysfs = tmp / "sys"
    device = sysfs / "devices" / ("pci0000:00/usb1/1-1/1-1:1.0/host0/target0:0:0/0:0:0:0" if usb else "platform/ahci/ata1/0:0:0:0")
    device.mkdir(parents=True)
    (device / "model").write_text("SD Reader\n")
    (device.parents[3] / "serial").write_text("000000001234\n") if usb else None
    block = sysfs / "block" / name
    block.mkdir(parents=True)
    (block / "device").symlink_to(device)
    (block / "removable").write_text(removable + "\n")
    (block / "ro").write_text(ro + "\n")
    (block / "size").write_text(f"{sectors}\n")
    part = block / f"{name}1"
    part.mkdir()
    (part / "partition").write_text("1\n")
    return sysfs


def mounts(tmp: Path, text: str = "") -> Path:
    path = tmp / "mounts"
    path.write_text("proc /proc proc rw 0 0\n/dev/sda2 / ext4 rw 0 0\n" + text)
    return path


def test_safe_card_reader_passes_with_serial(tmp_path: Path) -> None:
    target = inspect_block_device("sdb", str(fake_sys(tmp_path)), str(mounts(tmp_path)), need=4 << 30)
    assert target.removable and target.serial == "000000001234" and target.size == 62_333_952 * 512


@pytest.mark.parametrize(
    "case,kwargs,mount_text,message",
    [
        ("system", {"name": "sda"}, "/dev/sda1 /boot/firmware vfat rw 0 0\n", "holds this computer's system"),
        ("mounted", {}, "/dev/sdb1 /media/installer/bootfs vfat rw 0 0\n", "is mounted"),
        ("read-only", {"ro": "1"}, "", "is read-only"),
        ("too small", {"sectors": 2048}, "", "is too small"),
        ("internal", {"removable": "0", "usb": False}, "", "not a removable or USB disk"),
    ],
)
def test_unsafe_devices_are_refused(tmp_path: Path, case: str, kwargs: dict, mount_text: str, message: str) -> None:
    name = kwargs.pop("name", "sdb")
    sysfs = fake_sys(tmp_path, name=name, **kwargs)
    with pytest.raises(FlashError, match=message) as info:
        inspect_block_device(name, str(sysfs), str(mounts(tmp_path, mount_text)), need=4 << 30)
    assert info.value.hint  # always a next step


def test_internal_disk_allowed_with_force_but_never_the_system_disk(tmp_path: Path) -> None:
    sysfs = fake_sys(tmp_path, name="sda", removable="0", usb=False)
    assert inspect_block_device("sda", str(sysfs), str(mounts(tmp_path)), force=True).path == "/dev/sda"
    with pytest.raises(FlashError, match="system"):
        inspect_block_device("sda", str(sysfs), str(mounts(tmp_path, "/dev/sda1 / ext4 rw 0 0\n")), force=True)


def test_customised_image_or_the_image_itself_as_target_are_refused(kit: Kit, tmp_path: Path, capsys) -> None:
    first = tmp_path / "first.img"
    assert flash(kit, tmp_path, capsys, target=first)[0] == 0
    first_bytes = first.read_bytes()
    code, text, out = flash(kit, tmp_path / "x", capsys, "--replace", image=first, target=tmp_path / "second.img")
    assert code == 2 and "already customised" in text and "each card gets its own identity" in text
    code, text, _ = flash(kit, tmp_path, capsys, "--replace", image=first, target=first)
    assert code == 2 and "is the base image itself" in text
    assert first.read_bytes() == first_bytes
