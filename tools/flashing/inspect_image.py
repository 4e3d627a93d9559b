"""`edge-flash inspect`: what an image, a customised image or a card carries.

Reads only. Secrets are never printed: the Wi-Fi key and private key are
reported as present or absent, certificates by subject, expiry and fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from .errors import FlashError
from .fat import FatVolume
from .image import open_image
from .mbr import SECTOR, parse_mbr
from .payload import PAYLOAD_DIR
from .release import detect_release
from .source import ImageSource


def _describe_volume(vol: FatVolume, lines: list[str]) -> None:
    lines.append(
        f"boot partition: FAT{vol.fat_type}, label {vol.label!r}, {vol.free_bytes() / 1e6:.1f} MB free of {vol.cluster_count * vol.cluster_size / 1e6:.1f} MB"
    )
    try:
        lines.append(f"release: {detect_release(vol).describe()}")
    except FlashError as exc:
        lines.append(f"release: {exc.message}")
    if vol.exists("cmdline.txt"):
        lines.append(f"cmdline.txt: {vol.read_file('cmdline.txt').decode('utf-8', 'replace').strip()}")
    if not vol.exists(f"{PAYLOAD_DIR}/manifest.json"):
        lines.append("edge-agent: not customised (no /edge-agent/manifest.json)")
        return
    manifest = json.loads(vol.read_file(f"{PAYLOAD_DIR}/manifest.json"))
    lines.append(
        f"edge-agent: gateway {manifest['gateway_id']} (site {manifest['site']}), host name "
        f"{manifest['hostname']}, customised {manifest['created']} for {manifest['mechanism']}"
    )
    lines.append(f"  admin user {manifest['admin_user']}, SSH keys: {', '.join(manifest['ssh_keys'])}")
    lines.append(f"  network: {manifest['network']}; time zone {manifest['timezone'] or '-'}; NTP {' '.join(manifest['ntp_servers']) or '-'}")
    cert = manifest.get("certificate_sha256")
    lines.append(
        f"  identity: {'certificate ' + cert if cert else 'CSR only (certificate from the city CA)'}; public key sha256 {manifest['public_key_sha256']}"
    )
    done = vol.exists(f"{PAYLOAD_DIR}/FIRSTBOOT-DONE")
    if done:
        lines.append(f"  first boot: done at {vol.read_file(f'{PAYLOAD_DIR}/FIRSTBOOT-DONE').decode().strip()} (secrets removed from the boot partition)")
    if vol.exists(f"{PAYLOAD_DIR}/FIRSTBOOT-FAILED"):
        lines.append("  first boot: FAILED: " + vol.read_file(f"{PAYLOAD_DIR}/FIRSTBOOT-FAILED").decode().strip().replace("\n", " "))
    damaged, consumed = [], []
    for path, meta in manifest["files"].items():
        if not vol.exists(path):
            consumed.append(path)
            continue
        data = vol.read_file(path)
        if hashlib.sha256(data).hexdigest() != meta["sha256"]:
            damaged.append(path)
        if path.endswith((".pem", ".crt")) and b"BEGIN CERTIFICATE" in data:
            c = x509.load_pem_x509_certificate(data)
            lines.append(
                f"  {path}: {c.subject.rfc4514_string()}, valid until {c.not_valid_after_utc:%Y-%m-%d}, sha256 {c.fingerprint(hashes.SHA256()).hex()[:16]}..."
            )
    wheels = sorted(p.rsplit("/", 1)[1] for p in manifest["files"] if p.startswith(f"{PAYLOAD_DIR}/wheels/"))
    lines.append(f"  wheels ({len(wheels)}): {', '.join(wheels)}")
    lines.append(
        f"  files: {len(manifest['files'])} in manifest, {len(damaged)} damaged, {len(consumed)} missing" + (" (removed by first boot)" if done else "")
    )
    for path in damaged:
        lines.append(f"  DAMAGED: /{path} does not match the manifest")
    if consumed and not done:
        for path in consumed:
            lines.append(f"  MISSING: /{path}")
    if vol.exists("network-config"):
        text = vol.read_file("network-config").decode("utf-8", "replace")
        ssids = re.findall(r'^\s{8}"(.+)":\s*$', text, re.M)
        lines.append(f"  network-config: Wi-Fi {', '.join(ssids) or 'none'} (key not shown)")


def inspect(path: str) -> str:
    """A report of what `path` (image file, compressed image, or block device) carries."""
    lines = [f"{path}"]
    try:
        st = os.stat(path)
    except OSError as exc:
        raise FlashError(f"cannot open {path}: {exc.strerror}", "check the path (cards need sudo to read)") from exc
    raw_device = stat.S_ISBLK(st.st_mode)
    source = None if raw_device else ImageSource.open_path(path)
    if raw_device or (source is not None and source.kind == "img"):
        try:
            f = open(path, "rb")
        except OSError as exc:
            raise FlashError(f"cannot read {path}: {exc.strerror}", "cards need sudo to read") from exc
        with f:
            table = parse_mbr(f.read(SECTOR))
            size = f.seek(0, os.SEEK_END)
            if size < table.end:
                lines.append(f"TRUNCATED: partitions need {table.end} bytes, only {size} present")
            for p in table.partitions:
                lines.append(f"partition {p.number}: {p.type_name}, start {p.start}, {p.size / 1e6:.1f} MB")
            boot = table.boot_partition()
            _describe_volume(FatVolume(f, boot.start, writable=False), lines)
    else:
        assert source is not None
        with open_image(source) as opened:
            for p in opened.table.partitions:
                lines.append(f"partition {p.number}: {p.type_name}, start {p.start}, {p.size / 1e6:.1f} MB")
            _describe_volume(opened.volume, lines)
    return "\n".join(lines)
