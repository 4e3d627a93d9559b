"""Topics and payloads of the telemetry contract (docs/telemetry.md, version 1).

Readings go out per device, many per message; events (drops, corrupt store,
storage trouble) share the readings' sequence numbers and go to their own
topic. Encoding is done one reading at a time and joined, so the size limit
of a message is known without encoding it twice.
"""

from __future__ import annotations

import json
import math
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


def _reading_json(row: Row) -> str:
    seq, _device, metric, value, unit, status, detail, _boot, mono, wall, tq = row
    if isinstance(value, float) and not math.isfinite(value):
        # JSON has no NaN/Infinity; say so instead of sending something parsers reject.
        detail = detail or f"non-finite value {value}"
        value = None
        if status == "ok":
            status = "error"
    item: dict[str, Any] = {"seq": seq, "metric": metric, "value": value}
    if unit:
        item["unit"] = unit
    item["status"] = status
    if detail:
        item["detail"] = detail
    item["ts"] = round(wall, 6)
    item["time"] = TIME_QUALITY.get(tq, "unsynced")
    item["mono_ns"] = mono
    return _dumps(item)


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
