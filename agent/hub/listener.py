"""The reference hub consumer: validate, dedup, store, report gaps.

Integrators read this as the executable form of docs/telemetry.md. Every
message is validated against agent.hub.schema; what breaks the contract is
counted and kept (the last 1,000) and never stops the listener.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from agent.hub.schema import EventsPayload, HealthPayload, InvalidMessage, ReadingsPayload, StatusPayload, validate
from agent.hub.store import HubStore

Printer = Callable[[str], None]


class HubListener:
    def __init__(self, store: HubStore, *, prefix: str = "city", printer: Printer | None = None, log: logging.Logger | None = None) -> None:
        self.store = store
        self.prefix = prefix
        self.printer = printer
        self.log = log or logging.getLogger("edge_agent.hub")
        self.received = 0
        self.invalid = 0
        self.latencies: list[float] = []  # receive time - reading time, seconds (synced readings only)
        self.keep_latencies = False
        self.changed = threading.Condition()

    @property
    def topics(self) -> list[str]:
        return [self.prefix + "/#"]

    def handle(self, topic: str, payload: bytes) -> None:
        """One MQTT message. Never raises."""
        now = time.time()
        self.received += 1
        try:
            kind, model = validate(topic, payload, self.prefix)
        except InvalidMessage as exc:
            self.invalid += 1
            self.store.add_invalid(topic, str(exc), payload)
            self._print(f"INVALID {exc}")
            return
        if isinstance(model, ReadingsPayload):
            new, dup = self.store.add_readings(model)
            if self.keep_latencies:
                self.latencies.extend(now - r.ts for r in model.readings if r.time == "synced")
            if self.printer:
                for r in model.readings:
                    unit = f" {r.unit}" if r.unit else ""
                    extra = "" if r.status == "ok" else f" [{r.status} {r.detail}]".rstrip()
                    self._print(f"{model.gateway} #{r.seq} {model.device}/{r.metric} = {r.value!r}{unit}{extra} ({r.time})")
                if dup:
                    self._print(f"{model.gateway}: {dup} duplicate(s) dropped")
        elif isinstance(model, EventsPayload):
            self.store.add_events(model)
            for e in model.events:
                self._print(f"{model.gateway} #{e.seq} EVENT {e.kind} {json.dumps(e.data)}")
        elif isinstance(model, (StatusPayload, HealthPayload)):
            self.store.set_latest(kind, model, payload)
            if isinstance(model, StatusPayload):
                self._print(f"{model.gateway} is {model.state} ({model.reason})")
            else:
                ob = model.outbox
                self._print(f"{model.gateway} health: outbox depth {ob.get('depth')}, oldest {ob.get('oldest_unsent_age')}, dropped {ob.get('dropped')}")
        with self.changed:
            self.changed.notify_all()

    def _print(self, line: str) -> None:
        if self.printer is not None:
            try:
                self.printer(line)
            except Exception:  # noqa: BLE001 - a closed stdout must not stop the hub
                pass

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until predicate() holds (checked after each message) or timeout seconds pass."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(min(left, 0.5))
        return True

    def summary(self) -> dict[str, Any]:
        out = self.store.summary()
        out["received"] = self.received
        return out
