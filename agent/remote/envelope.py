"""Command messages from the hub: parsing, Ed25519 signatures, freshness.

A command arrives on `<prefix>/<site>/<gateway>/cmd/<name>` as UTF-8 JSON,
either plain:

    {"id": "c-0001", "ts": 1732356000.5, "nonce": "9f2c...", "args": {...}}

or signed (required for `config` and `model`):

    {"signed": "<the plain command as JSON text>", "sig": "<base64 Ed25519 signature of those bytes>"}

A signed command must also name its `cmd` and `gateway` inside the signed
text, so a signature made for one gateway or one command cannot be replayed
to another. Signing the exact bytes (not a re-serialisation) means the hub
needs no canonical JSON.
"""

from __future__ import annotations

import base64
import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
NONCE_PATTERN = re.compile(r"^[A-Za-z0-9_+/=-]{16,128}$")
MAX_COMMAND_BYTES = 1024 * 1024


class Refused(Exception):
    """A command the gateway will not run; `code` is machine-readable, the text says why and what to do."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Command:
    __slots__ = ("name", "id", "ts", "nonce", "args", "signed_by")

    def __init__(self, name: str, id: str, ts: float, nonce: str, args: dict[str, Any], signed_by: int | None) -> None:
        self.name = name
        self.id = id
        self.ts = ts
        self.nonce = nonce
        self.args = args
        self.signed_by = signed_by  # index into trusted_keys, None when unsigned


def peek_id(payload: bytes) -> str | None:
    """Best-effort correlation id of a message that could not be parsed, so the refusal can name it."""
    try:
        obj = json.loads(payload)
        if isinstance(obj, dict) and "signed" in obj:
            obj = json.loads(obj["signed"])
        cid = obj.get("id") if isinstance(obj, dict) else None
        return cid if isinstance(cid, str) and ID_PATTERN.match(cid) else None
    except (ValueError, TypeError, AttributeError):
        return None


def parse(name: str, payload: bytes, *, gateway: str, trusted: list[Ed25519PublicKey] | TrustedKeys) -> Command:
    if len(payload) > MAX_COMMAND_BYTES:
        raise Refused("too_large", f"command is {len(payload)} bytes, more than {MAX_COMMAND_BYTES}; send large files in chunks")
    try:
        outer = json.loads(payload)
    except ValueError as exc:
        raise Refused("malformed", f"not JSON ({exc}); send a UTF-8 JSON object") from None
    if not isinstance(outer, dict):
        raise Refused("malformed", "the command must be a JSON object")
    signed_by = None
    if "signed" in outer or "sig" in outer:
        text, sig = outer.get("signed"), outer.get("sig")
        if not isinstance(text, str) or not isinstance(sig, str):
            raise Refused("malformed", "a signed command needs `signed` (JSON text) and `sig` (base64) as strings")
        signed_by = _verify(text.encode(), sig, trusted)
        try:
            body = json.loads(text)
        except ValueError:
            raise Refused("malformed", "`signed` is not JSON text") from None
        if not isinstance(body, dict):
            raise Refused("malformed", "`signed` must hold a JSON object")
        if body.get("cmd") != name:
            raise Refused("wrong_target", f"signed for command {body.get('cmd')!r} but sent to cmd/{name}")
        if body.get("gateway") != gateway:
            raise Refused("wrong_target", f"signed for gateway {body.get('gateway')!r}, this is {gateway!r}")
    else:
        body = outer
    cid, ts, nonce, args = body.get("id"), body.get("ts"), body.get("nonce"), body.get("args", {})
    if not isinstance(cid, str) or not ID_PATTERN.match(cid):
        raise Refused("malformed", "`id` (correlation id) must be 1-64 characters of A-Z a-z 0-9 _ . : -")
    if isinstance(ts, bool) or not isinstance(ts, int | float):
        raise Refused("malformed", "`ts` must be the sending time in Unix seconds")
    if not isinstance(nonce, str) or not NONCE_PATTERN.match(nonce):
        raise Refused("malformed", "`nonce` must be 16-128 random characters (base64 or hex)")
    if not isinstance(args, dict):
        raise Refused("malformed", "`args` must be a JSON object")
    if "gateway" in body and body["gateway"] != gateway:
        raise Refused("wrong_target", f"addressed to gateway {body['gateway']!r}, this is {gateway!r}")
    return Command(name, cid, float(ts), nonce, args, signed_by)


def _verify(data: bytes, sig_b64: str, trusted: list[Ed25519PublicKey] | TrustedKeys) -> int:
    from cryptography.exceptions import InvalidSignature

    if isinstance(trusted, TrustedKeys):
        trusted = trusted.keys()
    if not trusted:
        raise Refused("untrusted", "no [remote] trusted_keys are configured, so no signature can be accepted; add the hub's public key")
    try:
        sig = base64.b64decode(sig_b64, validate=True)
    except ValueError:
        raise Refused("bad_signature", "`sig` is not base64") from None
    for i, key in enumerate(trusted):
        try:
            key.verify(sig, data)
            return i
        except InvalidSignature:
            continue
    raise Refused("bad_signature", "the signature does not verify with any trusted key: the command was altered or signed with an unknown key")


def load_public_keys(keys: list[str]) -> list[Ed25519PublicKey]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    return [Ed25519PublicKey.from_public_bytes(base64.b64decode(k)) for k in keys]


class TrustedKeys:
    """The configured public keys, loaded on the first signature to check.

    The cryptography library costs the telemetry process several MB of
    memory; most gateways go days between signed updates. The config
    validator has already checked each key is 32 bytes of base64.
    """

    def __init__(self, keys_b64: list[str]) -> None:
        self._b64 = list(keys_b64)
        self._keys: list[Ed25519PublicKey] | None = None

    def keys(self) -> list[Ed25519PublicKey]:
        if self._keys is None:
            self._keys = load_public_keys(self._b64)
        return self._keys

    def __bool__(self) -> bool:
        return bool(self._b64)


# -- the hub side (reference tools and tests) ---------------------------------


def sign(private_key: Ed25519PrivateKey, body: dict[str, Any]) -> bytes:
    """A signed command message for `body` (which must name `cmd` and `gateway`)."""
    text = json.dumps(body, separators=(",", ":"), sort_keys=True)
    sig = private_key.sign(text.encode())
    return json.dumps({"signed": text, "sig": base64.b64encode(sig).decode()}).encode()


def public_key_b64(private_key: Ed25519PrivateKey) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()
