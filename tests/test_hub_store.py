"""The reference hub: dedup by (gateway, seq), gaps, explained gaps, invalid messages."""

from __future__ import annotations

import json

from agent.hub.listener import HubListener
from agent.hub.store import HubStore


def readings_msg(gw: str, seqs: list[int], device: str = "meter-1") -> tuple[str, bytes]:
    body = {
        "v": 1,
        "gateway": gw,
        "site": "north",
        "device": device,
        "boot": "b1",
        "readings": [
            {"seq": s, "metric": "active_power", "value": float(s), "unit": "W", "status": "ok", "ts": 1.7e9 + s, "time": "synced", "mono_ns": s} for s in seqs
        ],
    }
    return f"city/north/{gw}/telemetry/{device}", json.dumps(body).encode()


def event_msg(gw: str, seq: int, kind: str, data: dict) -> tuple[str, bytes]:
    body = {
        "v": 1,
        "gateway": gw,
        "site": "north",
        "boot": "b1",
        "events": [{"seq": seq, "kind": kind, "data": data, "ts": 1.7e9, "time": "synced", "mono_ns": 1}],
    }
    return f"city/north/{gw}/events", json.dumps(body).encode()


def hub() -> HubListener:
    return HubListener(HubStore(":memory:"))


def test_duplicates_are_dropped_per_gateway():
    h = hub()
    h.handle(*readings_msg("gw-1", [1, 2, 3]))
    h.handle(*readings_msg("gw-1", [2, 3, 4]))  # resent after a lost PUBACK
    h.handle(*readings_msg("gw-2", [1, 2]))  # same numbers, other gateway: not duplicates
    s = h.summary()["gateways"]
    assert (s["gw-1"]["readings"], s["gw-1"]["duplicates"]) == (4, 2)
    assert (s["gw-2"]["readings"], s["gw-2"]["duplicates"]) == (2, 0)
    assert h.store.seqs("gw-1") == [1, 2, 3, 4]


def test_gaps_are_reported_and_those_the_gateway_explained_are_told_apart():
    h = hub()
    h.handle(*readings_msg("gw-1", [1, 2, 3]))
    h.handle(*readings_msg("gw-1", [7, 8]))
    h.handle(*readings_msg("gw-1", [20]))
    h.handle(*event_msg("gw-1", 21, "dropped", {"count": 3, "reason": "max_bytes", "first_seq": 4, "last_seq": 6}))
    assert h.store.gaps("gw-1") == [(4, 6), (9, 19)]
    assert h.store.unexplained_gaps("gw-1") == [(9, 19)]
    h.handle(*readings_msg("gw-1", list(range(9, 20))))  # late arrivals fill the gap
    assert h.store.unexplained_gaps("gw-1") == []


def test_a_replaced_outbox_database_explains_the_jump():
    h = hub()
    h.handle(*readings_msg("gw-1", [1, 2]))
    h.handle(*event_msg("gw-1", 1_000_003, "seq_jump", {"from": 1, "to": 1_000_003}))
    h.handle(*readings_msg("gw-1", [1_000_004]))
    assert h.store.gaps("gw-1") == [(3, 1_000_002)]
    assert h.store.unexplained_gaps("gw-1") == []


def test_garbage_is_counted_kept_and_never_raises():
    h = hub()
    lines: list[str] = []
    h.printer = lines.append
    garbage = [
        ("city/north/gw-1/telemetry/meter-1", b"\xff\xfe not json"),
        ("city/north/gw-1/telemetry/meter-1", b'{"v": 2}'),
        ("city/north/gw-1/telemetry/meter-1", b'{"v":1,"gateway":"gw-1","site":"north","device":"meter-1","boot":"b","readings":[]}'),
        ("city/north/gw-1/telemetry/other", readings_msg("gw-1", [1])[1]),  # device does not match topic
        ("city/north/gw-9/events", event_msg("gw-1", 5, "x", {})[1]),  # gateway does not match topic
        ("city/north/gw-1/whatever", b"{}"),
        ("elsewhere/x", b"{}"),
        ("city/north/gw-1/status", b"[1,2,3]"),
        ("city/north/gw-1/health", b"null"),
    ]
    for topic, payload in garbage:
        h.handle(topic, payload)
    s = h.summary()
    assert s["invalid"] == len(garbage) and s["gateways"] == {}
    assert all(line.startswith("INVALID") for line in lines)
    assert "device" in lines[3]
    h.handle(*readings_msg("gw-1", [1]))
    assert h.summary()["gateways"]["gw-1"]["readings"] == 1


def test_status_and_health_keep_the_latest():
    h = hub()
    status = {"v": 1, "state": "online", "reason": "connected", "gateway": "gw-1", "site": "north", "boot": "b", "ts": 1.0, "capabilities": ["telemetry"]}
    h.handle("city/north/gw-1/status", json.dumps(status).encode())
    h.handle("city/north/gw-1/status", json.dumps({**status, "state": "offline", "reason": "connection lost"}).encode())
    h.handle(*readings_msg("gw-1", [1]))
    assert h.store.latest("gw-1", "status")["reason"] == "connection lost"
    assert h.summary()["gateways"]["gw-1"]["state"] == "offline"
