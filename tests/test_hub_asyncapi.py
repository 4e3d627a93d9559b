"""docs/asyncapi.yaml is the contract the reference hub enforces, never a stale copy."""

from __future__ import annotations

from pathlib import Path

from agent.hub.asyncapi import document, render, to_yaml

DOC = Path(__file__).resolve().parents[1] / "docs" / "asyncapi.yaml"


def test_published_asyncapi_matches_the_hub_schemas():
    assert DOC.read_text() == render(), "docs/asyncapi.yaml is stale: run `python -m agent.hub.asyncapi > docs/asyncapi.yaml`"


def test_every_channel_has_qos_and_retain_and_a_schema():
    doc = document()
    for op in doc["operations"].values():
        assert op["bindings"]["mqtt"]["qos"] == 1
        channel = op["channel"]["$ref"].rsplit("/", 1)[1]
        assert channel in doc["channels"]
    assert doc["operations"]["sendStatus"]["bindings"]["mqtt"]["retain"] is True
    readings = doc["components"]["schemas"]["ReadingsPayload"]
    assert {"v", "gateway", "site", "device", "boot", "readings"} <= set(readings["required"])
    assert {"seq", "metric", "value", "status", "ts", "time", "mono_ns"} <= set(doc["components"]["schemas"]["ReadingItem"]["required"])


def test_yaml_emitter_nests_mappings_and_sequences():
    text = to_yaml({"a": {"b": [1, {"c": "x: y", "d": None}], "e": []}, "$ref": True})
    assert text == 'a:\n  b:\n    - 1\n    - c: "x: y"\n      d: null\n  e: []\n$ref: true\n'
