"""Topics and payloads of the telemetry contract (docs/telemetry.md, version 1).

Readings go out per device, many per message; events (drops, corrupt store,
storage trouble) share the readings' sequence numbers and go to their own
topic. Encoding is done one reading at a time and joined, so the size limit
of a message is known without encoding it twice.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Sequence
from typing import Any

from agent.outbox.store import EVENT_DEVICE, TQ_REBASED, TQ_SYNCED, Row

SCHEMA_VERSION = 1
TIME_QUALITY = {TQ_SYNCED: "synced", TQ_REBASED: "rebased"}  # anything else: "unsynced"

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


class Topics:
    """<prefix>/<site>/<gateway>/{status,health,events,telemetry/<device>,cmd/#}."""

    def __init__(self, prefix: str, site: str, gateway: str) -> None:
        self.base = f"{prefix}/{site}/{gateway}"
        self.status = self.base + "/status"
        self.health = self.base + "/health"
        self.events = self.base + "/events"
        self.commands = self.base + "/cmd/#"

    def telemetry(self, device: str) -> str:
        return f"{self.base}/telemetry/{device}"


class Message:
    __slots__ = ("topic", "payload", "seqs")

    def __init__(self, topic: str, payload: bytes, seqs: list[int]) -> None:
        self.topic = topic
        self.payload = payload
        self.seqs = seqs


_TQ_TEXT = {TQ_SYNCED: '"synced"', TQ_REBASED: '"rebased"'}
_text_cache: dict[str, str] = {}


def _js(text: str) -> str:
    """JSON string literal; metric, unit and status names repeat, so they are escaped once."""
    out = _text_cache.get(text)
    if out is None:
        out = _dumps(text)
        if len(_text_cache) < 10_000:
            _text_cache[text] = out
    return out


def _reading_json(row: Row) -> str:
    # Hand-assembled: this runs for every reading and json.dumps of a dict costs
    # three times as much. Same output as json.dumps(separators=(",", ":")).
    seq, _device, metric, value, unit, status, detail, _boot, mono, wall, tq = row
    t = type(value)
    if value is None:
        v = "null"
    elif t is bool:
        v = "true" if value else "false"
    elif t is int:
        v = str(value)
    elif t is float:
        if math.isfinite(value):
            v = repr(value)
        else:
            # JSON has no NaN/Infinity; say so instead of sending something parsers reject.
            detail = detail or f"non-finite value {value}"
            v = "null"
            if status == "ok":
                status = "error"
    else:
        v = _dumps(value if t is str else str(value))
    parts = ['{"seq":', str(seq), ',"metric":', _js(metric), ',"value":', v]
    if unit:
        parts += [',"unit":', _js(unit)]
    parts += [',"status":', _js(status)]
    if detail:
        parts += [',"detail":', _dumps(detail)]
    parts += [',"ts":', f"{wall:.6f}", ',"time":', _TQ_TEXT.get(tq, '"unsynced"'), ',"mono_ns":', str(mono), "}"]
    return "".join(parts)


def _event_json(row: Row) -> str:
    seq, _device, kind, value, _unit, _status, _detail, _boot, mono, wall, tq = row
    try:
        data = json.loads(value) if isinstance(value, str) else {}
    except ValueError:
        data = {"raw": str(value)}
    if not isinstance(data, dict):
        data = {"value": data}
    return _dumps({"seq": seq, "kind": kind, "data": data, "ts": round(wall, 6), "time": TIME_QUALITY.get(tq, "unsynced"), "mono_ns": mono})


def encode_batches(
    rows: Sequence[Row],
    topics: Topics,
    *,
    gateway: str,
    site: str,
    max_readings: int,
    max_bytes: int,
) -> Iterator[Message]:
    """Group rows by (device, boot) in order of first appearance and split them into messages."""
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        key = (row[1], row[7])
        group = groups.get(key)
        if group is None:
            groups[key] = [row]
        else:
            group.append(row)
    for (device, boot), group in groups.items():
        if device == EVENT_DEVICE:
            topic, one = topics.events, _event_json
            head = f'{{"v":{SCHEMA_VERSION},"gateway":{_dumps(gateway)},"site":{_dumps(site)},"boot":{_dumps(boot)},"events":['
        else:
            topic, one = topics.telemetry(device), _reading_json
            head = f'{{"v":{SCHEMA_VERSION},"gateway":{_dumps(gateway)},"site":{_dumps(site)},"device":{_dumps(device)},"boot":{_dumps(boot)},"readings":['
        budget = max_bytes - len(head) - 2
        parts: list[str] = []
        seqs: list[int] = []
        size = 0
        for row in group:
            text = one(row)
            n = len(text.encode()) if not text.isascii() else len(text)
            if parts and (len(parts) >= max_readings or size + n + 1 > budget):
                yield Message(topic, (head + ",".join(parts) + "]}").encode(), seqs)
                parts, seqs, size = [], [], 0
            parts.append(text)
            seqs.append(row[0])
            size += n + 1
        if parts:
            yield Message(topic, (head + ",".join(parts) + "]}").encode(), seqs)


def encode_json(obj: dict[str, Any]) -> bytes:
    """Status and health payloads: tolerant of whatever a driver put in its status."""
    try:
        return json.dumps(obj, separators=(",", ":"), default=str, allow_nan=False).encode()
    except ValueError:
        return json.dumps(_finite(obj), separators=(",", ":"), default=str, allow_nan=False).encode()


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def status_payload(state: str, reason: str, *, gateway: str, site: str, boot: str) -> bytes:
    """Retained status: offline on shutdown, and the last will (fixed when the session opens)."""
    return encode_json({"v": SCHEMA_VERSION, "state": state, "reason": reason, "gateway": gateway, "site": site, "boot": boot, "ts": time.time()})


def birth_payload(info: dict[str, Any], *, protocol: str, gateway: str, site: str, boot: str) -> bytes:
    """Retained online status with the agent's own description (versions, capabilities, devices)."""
    body = dict(info)
    body.update(
        {"v": SCHEMA_VERSION, "state": "online", "reason": "connected", "gateway": gateway, "site": site, "boot": boot, "ts": time.time(), "protocol": protocol}
    )
    body.setdefault("capabilities", [])
    body.setdefault("devices", [])
    return encode_json(body)


def health_payload(status: dict[str, Any], outbox: dict[str, Any], uplink: dict[str, Any], *, gateway: str, site: str, boot: str) -> bytes:
    """Health: the outbox and uplink figures, per-device status, and the rest of the agent's status."""
    extra = {k: v for k, v in status.items() if k not in ("outbox", "uplink", "gateway", "site", "devices")}
    return encode_json(
        {
            "v": SCHEMA_VERSION,
            "gateway": gateway,
            "site": site,
            "boot": boot,
            "ts": time.time(),
            "outbox": outbox,
            "uplink": uplink,
            "devices": status.get("devices", {}),
            "agent": extra,
        }
    )
