"""Helpers for the flashing tests: small Raspberry-Pi-OS-like disk images and wheels.

Images are built with the real tools (sfdisk, mkfs.vfat, mtools), so the FAT
code is checked against file systems it did not create and read back with
code it did not write.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import random
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parents[1]
MiB = 1 << 20
BOOT_START = 2048  # sectors, 1 MiB
TOOLS = ("sfdisk", "mkfs.vfat", "mcopy", "mdir", "fsck.fat")

MISSING_TOOLS = [t for t in TOOLS if shutil.which(t) is None and not Path("/usr/sbin", t).exists()]


@pytest.fixture
def disk_tools() -> None:
    # A missing tool fails the test with the fix; a skip would hide that the
    # images were never built and checked.
    if MISSING_TOOLS:
        pytest.fail(f"missing {', '.join(MISSING_TOOLS)}: apt-get install fdisk dosfstools mtools (tools/test.sh installs them as root)")


needs_disk_tools = pytest.mark.usefixtures("disk_tools")

CMDLINE = "console=serial0,115200 console=tty1 root=PARTUUID=5e3da3da-02 rootfstype=ext4 fsck.repair=yes rootwait quiet\n"


def run(*cmd: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def build_image(path: Path, release: str = "trixie", boot_mb: int = 40, root_mb: int = 6, fat: int = 32, seed: int = 7) -> Path:
    """An MBR image: FAT boot partition at 1 MiB with Pi boot files, partition 2 of random bytes."""
    boot_sectors = boot_mb * MiB // 512
    root_start = BOOT_START + boot_sectors
    root_sectors = root_mb * MiB // 512
    with open(path, "wb") as f:
        f.truncate((root_start + root_sectors) * 512)
    table = f"label: dos\nlabel-id: 0x5e3da3da\nstart={BOOT_START}, size={boot_sectors}, type=c\nstart={root_start}, size={root_sectors}, type=83\n"
    run("sfdisk", "--quiet", str(path), input=table)
    run("mkfs.vfat", "-F", str(fat), "-n", "bootfs", "--offset", str(BOOT_START), str(path), str(boot_sectors // 2))
    files = {"cmdline.txt": CMDLINE, "config.txt": "arm_64bit=1\n[all]\n", "kernel8.img": "K" * 5000}
    if release == "trixie":
        files["issue.txt"] = "Raspberry Pi reference 2025-10-01\nGenerated using pi-gen, stage2\n"
        files["user-data"] = "#cloud-config\n# default image user-data\n"
        files["meta-data"] = "instance_id: rpios-image\n"
        files["network-config"] = "network:\n  version: 2\n"
    elif release == "bookworm":
        files["issue.txt"] = "Raspberry Pi reference 2024-11-19\nGenerated using pi-gen, stage2\n"
        files["kernel_2712.img"] = "P5"
    elif release == "bullseye":
        files["issue.txt"] = "Raspberry Pi reference 2023-05-03\nGenerated using pi-gen, stage2\n"
    stage = path.parent / f"{path.name}.files"
    stage.mkdir(exist_ok=True)
    for name, text in files.items():
        (stage / name).write_text(text)
        run("mcopy", "-i", f"{path}@@{BOOT_START * 512}", str(stage / name), f"::{name}")
    shutil.rmtree(stage)
    # a random block tiled with its index: every offset is distinct, yet it compresses fast
    block = random.Random(seed).randbytes(64 << 10)
    tiles = b"".join(i.to_bytes(8, "little") + block[8:] for i in range(root_sectors * 512 // len(block)))
    with open(path, "r+b") as f:
        f.seek(root_start * 512)
        f.write(tiles)
    return path


def partition2(path: Path) -> bytes:
    data = Path(path).read_bytes()
    table = run("sfdisk", "--json", str(path)).stdout
    import json

    part = json.loads(table)["partitiontable"]["partitions"][1]
    return data[part["start"] * 512 : (part["start"] + part["size"]) * 512]


def mtype(image: Path, name: str) -> bytes:
    out = subprocess.run(["mtype", "-i", f"{image}@@{BOOT_START * 512}", f"::{name}"], check=True, capture_output=True)
    return out.stdout


def extract_boot(image: Path, dest: Path) -> Path:
    """Copy every file on the boot partition into dest with mtools (not our FAT code)."""
    dest.mkdir(parents=True, exist_ok=True)
    run("mcopy", "-s", "-n", "-i", f"{image}@@{BOOT_START * 512}", "::*", str(dest))
    return dest


def make_wheel(
    directory: Path, name: str, version: str = "1.0", requires: list[str] | None = None, tag: str = "py3-none-any", module: str | None = None
) -> Path:
    """A minimal but installable wheel (pip accepts it with --no-index)."""
    dist = name.replace("-", "_")
    path = directory / f"{dist}-{version}-{tag}.whl"
    info = f"{dist}-{version}.dist-info"
    meta = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    meta += [f"Requires-Dist: {r}" for r in requires or []]
    files = {f"{info}/METADATA": "\n".join(meta) + "\n", f"{info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: {tag}\n"}
    if module:
        files[f"{module}.py"] = f"NAME = {name!r}\n"
    record = []
    for fname, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{fname},sha256={digest},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = "\n".join(record) + "\n"
    with zipfile.ZipFile(path, "w") as z:
        for fname, text in files.items():
            z.writestr(fname, text)
    return path


def make_wheels(root: Path) -> tuple[Path, Path]:
    """(agent wheel, wheelhouse): the agent needs paho-mqtt and pydantic, pydantic needs pydantic-core."""
    dist = root / "dist"
    house = root / "wheelhouse"
    dist.mkdir(parents=True, exist_ok=True)
    house.mkdir(parents=True, exist_ok=True)
    agent = make_wheel(dist, "edge-agent", "0.1.0", ["paho-mqtt>=2.1", "pydantic>=2.7", 'onnxruntime>=1.17; extra == "vision"'], module="edge_agent_probe")
    make_wheel(house, "paho-mqtt", "2.2.0", module="paho_probe")
    make_wheel(house, "pydantic", "2.14.0", ["pydantic-core==2.50.0", 'tomli; python_version < "3.11"'], module="pydantic_probe")
    make_wheel(house, "pydantic-core", "2.50.0", module="pydantic_core_probe")
    return agent, house


def make_ca(directory: Path, encrypted: bytes | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test City Installer CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    enc = serialization.BestAvailableEncryption(encrypted) if encrypted else serialization.NoEncryption()
    (directory / "ca.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc))
    (directory / "ca.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return directory


def ssh_key(directory: Path) -> Path:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    pub = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    path = directory / "installer.pub"
    path.write_bytes(pub + b" installer@laptop\n")
    return path


def write_config(path: Path, gateway_id: str = "gw-test-01") -> Path:
    text = (REPO / "config" / "gateway.example.toml").read_text()
    text = text.replace('id = "gw-cabinet-0412"', f'id = "{gateway_id}"', 1)
    path.write_text(text)
    return path


class Kit:
    """Everything a flashing run needs, built once per test directory."""

    def __init__(self, root: Path, release: str = "trixie") -> None:
        self.root = root
        self.image = build_image(root / f"{release}.img", release)
        self.agent_wheel, self.wheelhouse = make_wheels(root)
        self.ca = make_ca(root / "ca")
        self.key = ssh_key(root)
        self.config = write_config(root / "gw-test-01.toml")
        self.inventory = root / "inventory"

    def args(self, target: Path | str | None, *extra: str, config: Path | None = None, image: Path | None = None) -> list[str]:
        argv = [
            "write",
            "--image",
            str(image or self.image),
            "--config",
            str(config or self.config),
            "--ca-dir",
            str(self.ca),
            "--ssh-key",
            str(self.key),
            "--agent-wheel",
            str(self.agent_wheel),
            "--wheelhouse",
            str(self.wheelhouse),
            "--inventory",
            str(self.inventory),
            "--yes",
            "--scratch-dir",
            str(self.root),
        ]
        if target is not None:
            argv += ["--target", str(target)]
        return argv + list(extra)
