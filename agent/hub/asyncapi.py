"""The machine-readable telemetry contract: AsyncAPI 3.0, generated from agent.hub.schema.

    python -m agent.hub.asyncapi > docs/asyncapi.yaml

tests/test_hub_asyncapi.py fails when docs/asyncapi.yaml and the models differ,
so the published contract is always the one the reference hub enforces.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from pydantic.json_schema import models_json_schema

from agent.hub.schema import EventsPayload, HealthPayload, ReadingsPayload, StatusPayload
from agent.uplink.payload import SCHEMA_VERSION

_PARAMS = {
    "site": {"description": "Site (district, cabinet group) of the gateway; [gateway] site in its config."},
    "gateway": {"description": "Gateway id, unique in the city; also its MQTT client id."},
    "device": {"description": "Device name on the gateway ([[devices]] name)."},
}


def _channel(address: str, message: str, description: str, params: list[str]) -> dict[str, Any]:
    return {
        "address": address,
        "description": description,
        "parameters": {p: _PARAMS[p] for p in params},
        "messages": {message: {"$ref": f"#/components/messages/{message}"}},
    }


def _operation(action: str, channel: str, message: str, qos: int, retain: bool, summary: str) -> dict[str, Any]:
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "summary": summary,
        "messages": [{"$ref": f"#/channels/{channel}/messages/{message}"}],
        "bindings": {"mqtt": {"qos": qos, "retain": retain}},
    }


def document() -> dict[str, Any]:
    _, top = models_json_schema(
        [(m, "validation") for m in (ReadingsPayload, EventsPayload, StatusPayload, HealthPayload)],
        ref_template="#/components/schemas/{model}",
    )
    schemas = top["$defs"]
    base = "city/{site}/{gateway}"
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Edge gateway telemetry",
            "version": f"{SCHEMA_VERSION}.0.0",
            "description": (
                "What a city's edge gateways publish to the hub broker, and the command topic they listen on. "
                "`city` is the default topic prefix (uplink.topic_prefix). Every reading and event carries a per-gateway "
                "sequence number `seq`: drop duplicates by (gateway, seq); a missing number is a gap unless a `dropped` "
                "or `seq_jump` event covers it. Payload field `v` is the schema version; new optional fields do not change "
                "it, consumers ignore fields they do not know. See docs/telemetry.md."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "hub": {
                "host": "mqtt.city.example:8883",
                "protocol": "secure-mqtt",
                "protocolVersion": "5.0",
                "description": "The city's broker. Gateways use MQTT 5 and fall back to 3.1.1; TLS with optional client certificates, or username/password.",
            }
        },
        "channels": {
            "telemetry": _channel(
                base + "/telemetry/{device}", "Readings", "Readings of one device, many per message, in sequence order.", ["site", "gateway", "device"]
            ),
            "events": _channel(
                base + "/events", "Events", "Durable gateway events (drops, outbox problems); they share the readings' sequence.", ["site", "gateway"]
            ),
            "status": _channel(
                base + "/status", "Status", "Retained online (birth, on connect) / offline (clean shutdown or the broker's last will).", ["site", "gateway"]
            ),
            "health": _channel(
                base + "/health",
                "Health",
                "Buffer depth, oldest unsent age, drops, reconnects, per-device status; every uplink.health_interval.",
                ["site", "gateway"],
            ),
            "commands": {
                "address": base + "/cmd/{command}",
                "description": "Commands to the gateway (remote management). The gateway ignores what it cannot parse.",
                "parameters": {"site": _PARAMS["site"], "gateway": _PARAMS["gateway"], "command": {"description": "Command name."}},
                "messages": {"Command": {"$ref": "#/components/messages/Command"}},
            },
        },
        "operations": {
            "sendTelemetry": _operation("send", "telemetry", "Readings", 1, False, "Gateway publishes readings; deleted from its outbox only on PUBACK."),
            "sendEvents": _operation("send", "events", "Events", 1, False, "Gateway publishes events through the same durable outbox."),
            "sendStatus": _operation("send", "status", "Status", 1, True, "Birth on connect, offline on shutdown; the last will says offline too."),
            "sendHealth": _operation("send", "health", "Health", 1, False, "Periodic health; not stored while offline."),
            "receiveCommands": _operation("receive", "commands", "Command", 1, False, "Gateway subscribes with QoS 1."),
        },
        "components": {
            "messages": {
                "Readings": {"name": "Readings", "payload": {"$ref": "#/components/schemas/ReadingsPayload"}},
                "Events": {"name": "Events", "payload": {"$ref": "#/components/schemas/EventsPayload"}},
                "Status": {"name": "Status", "payload": {"$ref": "#/components/schemas/StatusPayload"}},
                "Health": {"name": "Health", "payload": {"$ref": "#/components/schemas/HealthPayload"}},
                "Command": {"name": "Command", "payload": {"type": "object", "description": "Defined by the remote management feature."}},
            },
            "schemas": schemas,
        },
    }


_PLAIN_KEY = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$.-]*$")


def to_yaml(obj: Any, indent: int = 0) -> str:
    """A small YAML emitter: block mappings and sequences, JSON-quoted strings (valid YAML)."""
    pad = "  " * indent
    lines: list[str] = []
    if isinstance(obj, dict):
        if not obj:
            return pad + "{}\n"
        for key, value in obj.items():
            k = key if _PLAIN_KEY.match(str(key)) else json.dumps(str(key))
            if isinstance(value, (dict, list)) and value:
                lines.append(f"{pad}{k}:\n{to_yaml(value, indent + 1)}")
            else:
                lines.append(f"{pad}{k}: {_scalar(value)}\n")
        return "".join(lines)
    if isinstance(obj, list):
        if not obj:
            return pad + "[]\n"
        for value in obj:
            if isinstance(value, (dict, list)) and value:
                body = to_yaml(value, indent + 1)
                lines.append(f"{pad}- {body.lstrip()}")
            else:
                lines.append(f"{pad}- {_scalar(value)}\n")
        return "".join(lines)
    return pad + _scalar(obj) + "\n"


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return json.dumps(str(value), ensure_ascii=False)


def render() -> str:
    return "# Generated by `python -m agent.hub.asyncapi`; do not edit by hand.\n" + to_yaml(document())


if __name__ == "__main__":
    sys.stdout.write(render())
