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
        import shutil

        width, height = shutil.get_terminal_size((120, 40))
        summary = self.listener.summary()
        lines = list(header)
        for gw, s in summary.get("gateways", {}).items():
            gaps = s.get("unexplained_gaps") or []
            lines.append(
                f"hub: gateway {gw}: {s['readings']} readings stored, seq {s['first_seq']}..{s['last_seq']}, "
                f"{s['duplicates']} duplicates dropped, {'no gaps' if not gaps else f'{len(gaps)} GAP(S)'}, {s.get('state') or '?'}; "
                f"{summary.get('invalid', 0)} invalid messages"
            )
        lines.append("")
        lines.append(f"{'device':<20}{'metrics':>8}{'age':>6}  newest values (headline metrics first)")
        now = time.time()
        with self._lock:
            by_device: dict[str, dict[str, dict[str, Any]]] = {}
            for (device, metric), item in self.latest.items():
                by_device.setdefault(device, {})[metric] = item
        for device in sorted(by_device):
            items = by_device[device]
            order = [m for m in HEADLINE if m in items] + sorted(m for m in items if m not in HEADLINE)
            age = now - max(i["received"] for i in items.values())
            values = "  ".join(_show(m, items[m]) for m in order)
            lines.append(f"{device:<20}{len(items):>8}{age:>5.0f}s  {values}"[:width])
        if len(lines) > height - 1:
            lines = lines[: height - 2] + ["(more devices than fit: enlarge the terminal)"]
        self.out.write("\x1b[H\x1b[2J" + "\n".join(lines) + "\n")
        self.out.flush()


# What a person looks at first for each kind of device.
HEADLINE = (
    "active_power",
    "energy_import",
    "voltage",
    "temperature",
    "relative_humidity",
    "sound_level",
    "pm2_5",
    "pm10",
    "fill_level",
    "overflow",
    "cars_in",
    "cars_out",
    "trucks_in",
    "trucks_out",
    "people_in",
    "people_out",
    "free_spaces",
    "latitude",
    "longitude",
    "cpu_temperature",
    "load_1m",
    "disk_free",
)


def _show(metric: str, item: dict[str, Any]) -> str:
    if item.get("status") != "ok":
        return f"{metric}=!{item.get('status')}"
    value = item.get("value")
    text = f"{value:.2f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
    unit = item.get("unit") or ""
    unit = "" if unit.startswith("{") else unit  # UCUM annotations such as {count}
    return f"{metric}={text}{unit}"
