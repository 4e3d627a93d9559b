"""The demo's live view of what the hub receives.

Wraps the reference hub consumer (agent.hub.listener): every message is
validated, deduplicated and stored exactly as the platform's integrators would,
and the view shows the newest value of every device and metric, with totals,
duplicates dropped and gaps. On a terminal it redraws in place; otherwise it
prints one line per reading (for logs and tests).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, TextIO

from agent.hub.listener import HubListener


class HubView:
    def __init__(self, listener: HubListener, *, out: TextIO, live: bool) -> None:
        self.listener = listener
        self.out = out
        self.live = live
        self.latest: dict[tuple[str, str], dict[str, Any]] = {}
        self.devices_seen: set[str] = set()
        self.readings = 0
        self._lock = threading.Lock()

    def handle(self, topic: str, payload: bytes) -> None:
        """Called on the MQTT thread for each message."""
        self.listener.handle(topic, payload)
        if "/telemetry/" not in topic:
            return
        try:
            msg = json.loads(payload)
            device = msg["device"]
            items = msg["readings"]
        except (ValueError, KeyError, TypeError):
            return  # the listener counted it as invalid
        with self._lock:
            self.devices_seen.add(device)
            for item in items:
                if not isinstance(item, dict):
                    continue
                self.readings += 1
                self.latest[(device, str(item.get("metric")))] = {**item, "received": time.time()}
                if not self.live:
                    value = item.get("value")
                    unit = item.get("unit", "")
                    status = item.get("status", "?")
                    extra = "" if status == "ok" else f" [{status} {item.get('detail', '')}]".rstrip()
                    self.out.write(f"hub <- {device}/{item.get('metric')} = {value} {unit}{extra} (seq {item.get('seq')})\n")
            if not self.live:
                self.out.flush()

    def render(self, header: list[str]) -> None:
        if not self.live:
            return
        summary = self.listener.summary()
        gws = summary.get("gateways", {})
        lines = list(header)
        for gw, s in gws.items():
            gaps = s.get("unexplained_gaps") or []
            lines.append(
                f"hub: gateway {gw}: {s['readings']} readings stored, seq {s['first_seq']}..{s['last_seq']}, "
                f"{s['duplicates']} duplicates dropped, {'no gaps' if not gaps else f'{len(gaps)} GAP(S)'}, {s.get('state') or '?'}"
            )
        lines.append(f"hub: {summary.get('invalid', 0)} invalid messages")
        lines.append("")
        lines.append(f"{'device':<22}{'metric':<26}{'value':>16} {'unit':<8}{'status':<12}{'age':>6}")
        now = time.time()
        with self._lock:
            rows = sorted(self.latest.items())
        for (device, metric), item in rows:
            value = item.get("value")
            text = f"{value:.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
            age = now - item["received"]
            lines.append(f"{device:<22}{metric:<26}{text:>16} {item.get('unit', ''):<8}{item.get('status', ''):<12}{age:>5.0f}s")
        self.out.write("\x1b[H\x1b[2J" + "\n".join(lines) + "\n")
        self.out.flush()
