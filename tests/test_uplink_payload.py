"""Encoding of telemetry batches: grouping, size limits, and the contract the hub validates."""

from __future__ import annotations

import json

from agent.hub.schema import EventsPayload, ReadingsPayload, validate
from agent.outbox.store import EVENT_DEVICE, TQ_REBASED, TQ_SYNCED, TQ_UNSYNCED
from agent.uplink.payload import Topics, encode_batches, encode_json

TOPICS = Topics("city", "north", "gw-7")


def row(seq, device="meter-1", value=1.5, boot="boot-a", tq=TQ_SYNCED, metric="active_power", status="ok", detail=""):
    return (seq, device, metric, value, "W", status, detail, boot, 123_000_000 + seq, 1_700_000_000.0 + seq, tq)


def encode(rows, max_readings=1000, max_bytes=128 * 1024):
    return list(encode_batches(rows, TOPICS, gateway="gw-7", site="north", max_readings=max_readings, max_bytes=max_bytes))


def test_readings_are_grouped_per_device_topic_and_validate_against_the_schema():
    msgs = encode([row(1), row(2, device="pm-sensor"), row(3), row(4, device=EVENT_DEVICE, metric="dropped", value='{"count":3}')])
    assert [m.topic for m in msgs] == ["city/north/gw-7/telemetry/meter-1", "city/north/gw-7/telemetry/pm-sensor", "city/north/gw-7/events"]
    assert [m.seqs for m in msgs] == [[1, 3], [2], [4]]
    kind, model = validate(msgs[0].topic, msgs[0].payload, "city")
    assert kind == "telemetry" and isinstance(model, ReadingsPayload)
    assert [(r.seq, r.metric, r.value, r.unit, r.time) for r in model.readings] == [
        (1, "active_power", 1.5, "W", "synced"),
        (3, "active_power", 1.5, "W", "synced"),
    ]
    kind, events = validate(msgs[2].topic, msgs[2].payload, "city")
    assert isinstance(events, EventsPayload) and events.events[0].kind == "dropped" and events.events[0].data == {"count": 3}


def test_batches_respect_the_reading_and_byte_limits_and_keep_order():
    rows = [row(i) for i in range(1, 1001)]
    by_count = encode(rows, max_readings=300)
    assert [len(m.seqs) for m in by_count] == [300, 300, 300, 100]
    by_size = encode(rows, max_bytes=4096)
    assert all(len(m.payload) <= 4096 for m in by_size)
    assert [s for m in by_size for s in m.seqs] == list(range(1, 1001))
    for m in by_size:
        assert [r["seq"] for r in json.loads(m.payload)["readings"]] == m.seqs


def test_a_single_reading_larger_than_the_limit_still_goes_alone():
    big = row(1, value="x" * 5000)
    msgs = encode([big, row(2)], max_bytes=1024)
    assert [m.seqs for m in msgs] == [[1], [2]]


def test_different_boots_never_share_a_message():
    msgs = encode([row(1, boot="a"), row(2, boot="b"), row(3, boot="a")])
    assert [(json.loads(m.payload)["boot"], m.seqs) for m in msgs] == [("a", [1, 3]), ("b", [2])]


def test_time_quality_and_non_finite_values():
    msgs = encode([row(1, tq=TQ_UNSYNCED), row(2, tq=TQ_REBASED), row(3, value=float("nan")), row(4, value=None, status="timeout", detail="no answer")])
    readings = json.loads(msgs[0].payload)["readings"]
    assert [r["time"] for r in readings] == ["unsynced", "rebased", "synced", "synced"]
    assert readings[2]["value"] is None and readings[2]["status"] == "error" and "nan" in readings[2]["detail"]
    assert readings[3]["status"] == "timeout" and readings[3]["detail"] == "no answer"
    validate(msgs[0].topic, msgs[0].payload, "city")


def test_bool_int_and_text_values_survive_as_json_types():
    msgs = encode([row(1, value=True), row(2, value=7), row(3, value="open")])
    _, model = validate(msgs[0].topic, msgs[0].payload, "city")
    assert [r.value for r in model.readings] == [True, 7, "open"]  # type: ignore[union-attr]
    assert type(model.readings[1].value) is int  # type: ignore[union-attr]


def test_status_json_tolerates_non_finite_numbers_and_odd_types():
    data = json.loads(encode_json({"a": float("inf"), "b": [float("nan"), 1.0], "c": {1, 2}.__class__.__name__, "d": object()}))
    assert data["a"] is None and data["b"] == [None, 1.0] and data["c"] == "set" and data["d"].startswith("<object")
