"""Signed model updates end to end: MQTT chunks or an http URL, sha256, Ed25519, warm-up, atomic switch, anti-rollback."""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import importlib.util
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.remote.hub_client import HubClient, command
from hil_tests.broker import MosquittoBroker
from hil_tests.remote_rig import GATEWAY, SITE, result, running_agent

pytestmark = pytest.mark.asyncio
ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("onnx_support", ROOT / "tests" / "onnx_support.py")
onnx_support = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(onnx_support)  # type: ignore[union-attr]

YOLO8 = {"output0": np.zeros((1, 6, 10), np.float32)}


def build(tmp: Path, version: str, *, broken: bool = False) -> tuple[bytes, str]:
    """(model.onnx bytes, manifest text) of a tiny real model named "counter"; `broken` declares an output the graph lacks."""
    (tmp / version).mkdir()
    folder = onnx_support.model_folder(tmp / version, YOLO8, **({"names": ["nope"]} if broken else {}))
    text = (folder / "manifest.toml").read_text().replace('name = "m"', 'name = "counter"').replace('version = "1"', f'version = "{version}"')
    return (folder / "model.onnx").read_bytes(), text


def offer(hub: HubClient, key: Ed25519PrivateKey | None, model: bytes, manifest: str, *, chunks: int = 3, url: str = "", sha: str = "") -> str:
    args = {"manifest": manifest, "sha256": sha or hashlib.sha256(model).hexdigest(), "size": len(model)}
    args.update({"url": url} if url else {"chunks": chunks})
    body = command("model", GATEWAY, args)
    cid = hub.send(SITE, GATEWAY, body, key)
    if not url:
        step = -(-len(model) // chunks)
        for i in reversed(range(chunks)):  # out of order on purpose
            hub.sub.client.publish(f"city/{SITE}/{GATEWAY}/cmd/model_chunk/{cid}/{i}", model[i * step : (i + 1) * step], qos=1)
    return cid


async def test_model_update_verified_switched_and_never_downgraded(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    key = Ed25519PrivateKey.generate()
    models = tmp_path / "models"
    extra = f'[vision]\nmodels_dir = "{models}"\n'
    v1, m1 = build(tmp_path, "1.0.0")
    v2, m2 = build(tmp_path, "1.1.0")
    v3, m3 = build(tmp_path, "2.0.0", broken=True)
    async with running_agent(tmp_path, mosquitto.port, key, extra=extra) as (agent, hub):
        ok = await result(hub, offer(hub, key, v1, m1), timeout=60)
        assert ok["state"] == "done", ok
        link = models / "counter"
        assert link.is_symlink() and (link / "model.onnx").read_bytes() == v1 and 'version = "1.0.0"' in (link / "manifest.toml").read_text()

        def installed() -> str:
            return os.readlink(link)

        before = installed()
        tampered = bytearray(v2)
        tampered[len(tampered) // 2] ^= 0xFF
        bad = await result(hub, offer(hub, key, bytes(tampered), m2, sha=hashlib.sha256(v2).hexdigest()), timeout=60)
        assert bad["state"] == "failed" and "tampered" in bad["reason"]
        unsigned = await result(hub, offer(hub, None, v2, m2))
        assert unsigned["state"] == "refused" and unsigned["data"]["code"] == "unsigned"
        old = await result(hub, offer(hub, key, *build(tmp_path, "0.9.0")))
        assert old["state"] == "refused" and old["data"]["code"] == "downgrade" and "1.0.0" in old["reason"]
        broken = await result(hub, offer(hub, key, v3, m3), timeout=60)
        assert broken["state"] == "failed" and "warm-up" in broken["reason"]
        assert installed() == before and (link / "model.onnx").read_bytes() == v1, "the running model is untouched"

        with _Server(tmp_path / "www") as srv:
            (tmp_path / "www" / "m.onnx").write_bytes(v2)
            new = await result(hub, offer(hub, key, v2, m2, url=f"http://127.0.0.1:{srv.port}/m.onnx"), timeout=60)
        assert new["state"] == "done" and new["data"]["previous"] == "1.0.0", new
        assert (link / "model.onnx").read_bytes() == v2
        assert agent.remote.status()["models"] == {"counter": "1.1.0"}
        events = await asyncio.to_thread(hub.wait, lambda: len(hub.events("model_updated")) >= 2 and len(hub.events("model_refused")) >= 2, 20)
        assert events, "updates and refusals are reported as events"
        assert not any((tmp_path / "data" / "remote" / "model-staging").iterdir()), "no staging left behind"


class _Server:
    def __init__(self, root: Path) -> None:
        root.mkdir()
        handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(root))  # noqa: E731
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]

    def __enter__(self) -> _Server:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
