"""The hub's side of remote management: build, sign and send commands, collect results.

Reference code for the central platform (and what `edge-agent remote send`
and the tests use). Results arrive on `<prefix>/<site>/<gateway>/result`.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.remote.envelope import sign
from agent.uplink.paho_adapter import Subscriber

if TYPE_CHECKING:
    from agent.uplink.config import TlsConfig


def command(cmd: str, gateway: str, args: dict[str, Any] | None = None, *, cid: str = "", ts: float | None = None, nonce: str = "") -> dict[str, Any]:
    return {
        "v": 1,
        "cmd": cmd,
        "gateway": gateway,
        "id": cid or "c-" + secrets.token_hex(6),
        "ts": time.time() if ts is None else ts,
        "nonce": nonce or secrets.token_hex(16),
        "args": args or {},
    }


def encode(body: dict[str, Any], key: Ed25519PrivateKey | None = None) -> bytes:
    return sign(key, body) if key is not None else json.dumps(body).encode()


class HubClient:
    def __init__(self, prefix: str = "city", *, client_id: str = "hub", tls: TlsConfig | None = None, username: str = "", password: str | None = None) -> None:
        self.prefix = prefix
        self.results: list[dict[str, Any]] = []
        self.messages: list[tuple[str, bytes]] = []
        self._cond = threading.Condition()
        self.sub = Subscriber(
            client_id=client_id,
            topics=[f"{prefix}/#"],
            on_message=self._on_message,
            username=username,
            password=password,
            tls=tls,
            log=logging.getLogger("hub.remote"),
        )

    def _on_message(self, topic: str, payload: bytes) -> None:
        with self._cond:
            self.messages.append((topic, payload))
            if topic.endswith("/result"):
                self.results.append(json.loads(payload))
            self._cond.notify_all()

    def start(self, host: str, port: int) -> HubClient:
        self.sub.start(host, port)
        return self

    def stop(self) -> None:
        self.sub.stop()

    def send(self, site: str, gateway: str, body: dict[str, Any], key: Ed25519PrivateKey | None = None, *, raw: bytes | None = None) -> str:
        topic = f"{self.prefix}/{site}/{gateway}/cmd/{body['cmd']}"
        self.sub.client.publish(topic, raw if raw is not None else encode(body, key), qos=1)
        return body["id"]

    def wait(self, predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    return value
                self._cond.wait(min(left, 0.5))

    def result(self, cid: str, states: tuple[str, ...] = ("done", "failed", "refused"), timeout: float = 20.0) -> dict[str, Any] | None:
        """The first result of command `cid` in one of `states` (None on timeout)."""
        return self.wait(lambda: next((r for r in self.results if r.get("id") == cid and r.get("state") in states), None), timeout)

    def states(self, cid: str) -> list[str]:
        with self._cond:
            return [r["state"] for r in self.results if r.get("id") == cid]

    def events(self, kind: str) -> list[dict[str, Any]]:
        with self._cond:
            out = []
            for topic, payload in self.messages:
                if topic.endswith("/events"):
                    out += [e for e in json.loads(payload).get("events", []) if e.get("kind") == kind]
            return out
