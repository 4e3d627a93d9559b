"""SSH public keys for the gateway's admin user: checked before they go on a card."""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from pathlib import Path

from .errors import FlashError

KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)


def key_fingerprint(line: str) -> str:
    """OpenSSH's SHA256:... fingerprint; raises ValueError for anything but a public key line."""
    parts = line.split()
    if len(parts) < 2 or parts[0] not in KEY_TYPES:
        raise ValueError("not an OpenSSH public key line (expected e.g. 'ssh-ed25519 AAAA... comment')")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("the key data is not valid base64") from exc
    if len(blob) < 4:
        raise ValueError("the key data is too short")
    (length,) = struct.unpack(">I", blob[:4])
    if blob[4 : 4 + length].decode("ascii", "replace") != parts[0]:
        raise ValueError(f"the key data does not match its type {parts[0]}")
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def load_keys(paths: list[str]) -> list[str]:
    """Every public key line in the given files; a private key or junk is refused."""
    keys: list[str] = []
    for name in paths:
        path = Path(name)
        try:
            text = path.read_text()
        except OSError as exc:
            raise FlashError(f"cannot read SSH key file {path}: {exc.strerror}", "check the --ssh-key path") from exc
        if "PRIVATE KEY" in text:
            raise FlashError(f"{path} is a private key", "pass the .pub file; private keys never go on a gateway")
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            try:
                key_fingerprint(line)
            except ValueError as exc:
                raise FlashError(f"{path}:{number}: {exc}", "pass OpenSSH public keys (.pub files)") from exc
            keys.append(line)
    if not keys:
        raise FlashError(
            "no SSH public key given: gateways have no password, so without a key nobody can log in", "add --ssh-key ~/.ssh/id_ed25519.pub (repeatable)"
        )
    return keys
