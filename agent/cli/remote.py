"""`edge-agent remote`: the hub operator's tools (signing keys, sending commands to a gateway)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("remote", help="hub side of remote management: signing keys, commands to a gateway")
    rs = p.add_subparsers(dest="remote_cmd", required=True)

    k = rs.add_parser("keygen", help="create an Ed25519 signing key (private file 0600) and print the public key for [remote] trusted_keys")
    k.add_argument("--out", required=True, metavar="FILE", help="where to write the private key (PEM); keep it on the hub only")
    k.set_defaults(handler=keygen)

    s = rs.add_parser("send", help="send one command to a gateway and print its results")
    s.add_argument("command", help="ping, rebirth, read, write, restart, reboot, bundle, log_level, config, model")
    s.add_argument("--gateway", required=True)
    s.add_argument("--site", required=True)
    s.add_argument("--prefix", default="city")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8883)
    s.add_argument("--ca-file", default="", help="broker CA (enables TLS)")
    s.add_argument("--cert-file", default="", help="hub client certificate (CN hub)")
    s.add_argument("--key-file", default="", help="hub client private key")
    s.add_argument("--username", default="")
    s.add_argument("--password-file", default="")
    s.add_argument("--sign-key", default="", metavar="FILE", help="private key from `remote keygen`; required for config and model")
    s.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE", help="command argument; VALUE is JSON when it parses, else text")
    s.add_argument("--config-file", default="", help="config: the new gateway.toml")
    s.add_argument("--version", default="", help="config: integer version, higher than the running one")
    s.add_argument("--model-dir", default="", help="model: folder with manifest.toml and the model file")
    s.add_argument("--timeout", type=float, default=60.0)
    s.set_defaults(handler=send)


def keygen(args: Any) -> int:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from agent.remote.envelope import public_key_b64

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    try:
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        print(f"{args.out} exists; refusing to overwrite a signing key (pick another --out)", file=sys.stderr)
        return 2
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    print(f"private key written to {args.out} (mode 0600). Put this line into each gateway's [remote] section:")
    print(f'trusted_keys = ["{public_key_b64(key)}"]')
    return 0


def _args(args: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in args.arg:
        k, _, v = item.partition("=")
        try:
            out[k] = json.loads(v)
        except ValueError:
            out[k] = v
    if args.config_file:
        with open(args.config_file, encoding="utf-8") as fh:
            out["config"] = fh.read()
        out["version"] = int(args.version or 0)
    return out


def send(args: Any) -> int:
    import hashlib

    from cryptography.hazmat.primitives import serialization

    from agent.remote.hub_client import HubClient, command
    from agent.uplink.config import TlsConfig

    key = None
    if args.sign_key:
        with open(args.sign_key, "rb") as fh:
            key = serialization.load_pem_private_key(fh.read(), password=None)
    cmd_args = _args(args)
    model = b""
    if args.model_dir:
        import tomllib

        with open(os.path.join(args.model_dir, "manifest.toml"), encoding="utf-8") as fh:
            manifest = fh.read()
        with open(os.path.join(args.model_dir, tomllib.loads(manifest)["model"].get("file", "model.onnx")), "rb") as fh:
            model = fh.read()
        cmd_args.update(
            {"manifest": manifest, "sha256": hashlib.sha256(model).hexdigest(), "size": len(model), "chunks": max(1, -(-len(model) // (256 * 1024)))}
        )
    password = None
    if args.password_file:
        with open(args.password_file, encoding="utf-8") as fh:
            password = fh.read().strip()
    tls = TlsConfig(ca_file=args.ca_file, cert_file=args.cert_file, key_file=args.key_file) if args.ca_file else None
    hub = HubClient(args.prefix, client_id=f"hub-cli-{os.getpid()}", tls=tls, username=args.username, password=password)
    hub.start(args.host, args.port)
    try:
        body = command(args.command, args.gateway, cmd_args)
        cid = hub.send(args.site, args.gateway, body, key)  # type: ignore[arg-type]
        if model:
            step = 256 * 1024
            for i in range(cmd_args["chunks"]):
                hub.sub.client.publish(f"{args.prefix}/{args.site}/{args.gateway}/cmd/model_chunk/{cid}/{i}", model[i * step : (i + 1) * step], qos=1)
        res = hub.result(cid, timeout=args.timeout)
    finally:
        hub.stop()
    for r in [r for r in hub.results if r.get("id") == cid]:
        print(json.dumps(r, sort_keys=True))
    if res is None:
        print(f"no final result for {cid} within {args.timeout:.0f} s (is the gateway online? see its status topic)", file=sys.stderr)
        return 1
    return 0 if res["state"] == "done" else 1
