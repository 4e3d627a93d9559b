"""Payload schemas of the telemetry contract, version 1 (docs/telemetry.md).

The reference hub validates every message against these models; docs/asyncapi.yaml
is generated from them (agent.hub.asyncapi), so the contract and the code cannot
drift apart. Consumers ignore fields they do not know: new optional fields do
not change `v`, anything that breaks a consumer does.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from agent.readings import STATUSES

Status = Literal[STATUSES]  # type: ignore[valid-type]
TimeQuality = Literal["synced", "rebased", "unsynced"]
Value = StrictBool | StrictInt | StrictFloat | StrictStr | None


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ReadingItem(_Model):
    seq: int = Field(ge=1, description="Per-gateway sequence number; never reused. Dedup key with the gateway id.")
    metric: str = Field(min_length=1, description="lower_snake_case quantity name, e.g. active_power.")
    value: Value = Field(description="The measured value; null when status is not ok.")
    unit: str = Field("", description="UCUM-style unit, e.g. W, kWh, Cel, ug/m3; absent when unitless.")
    status: Status = Field(description="ok, or why there is no value.")
    detail: str = Field("", description="Human-readable detail of a non-ok status.")
    ts: float = Field(description="Wall time, Unix seconds (UTC). Trust it according to `time`.")
    time: TimeQuality = Field(
        description="synced: stamped with a synchronised clock; rebased: corrected from boot id + monotonic time after sync; unsynced: never corrected (sync did not come in that boot)."
    )
    mono_ns: int = Field(ge=0, description="Monotonic (boot) time in ns; with `boot`, orders readings within a boot.")


class ReadingsPayload(_Model):
    v: Literal[1]
    gateway: str
    site: str
    device: str
    boot: str = Field(description="Boot id of the gateway when these readings were stamped.")
    readings: list[ReadingItem] = Field(min_length=1)


class EventItem(_Model):
    seq: int = Field(ge=1, description="Shares the readings' sequence.")
    kind: str = Field(description="dropped, outbox_corrupt, seq_jump, storage_degraded, storage_recovered, ...")
    data: dict[str, Any]
    ts: float
    time: TimeQuality
    mono_ns: int = Field(ge=0)


class EventsPayload(_Model):
    v: Literal[1]
    gateway: str
    site: str
    boot: str
    events: list[EventItem] = Field(min_length=1)


class StatusPayload(_Model):
    v: Literal[1]
    state: Literal["online", "offline"]
    reason: str = Field(description="connected, shutdown, or connection lost (the broker's last will).")
    gateway: str
    site: str
    boot: str
    ts: float
    versions: dict[str, str] = Field(default_factory=dict, description="Birth only: agent and library versions.")
    capabilities: list[str] = Field(default_factory=list, description="Birth only: telemetry, health, commands, vision ...")
    devices: list[dict[str, Any]] = Field(default_factory=list, description="Birth only: each device's describe().")


class HealthPayload(_Model):
    v: Literal[1]
    gateway: str
    site: str
    boot: str
    ts: float
    outbox: dict[str, Any] = Field(description="depth, oldest_unsent_age, dropped, dropped_by_reason, bytes, degraded, ...")
    uplink: dict[str, Any] = Field(description="connected, reconnects, inflight, sent, last_ack_wall, cert_expiry, ...")
    devices: dict[str, Any] = Field(description="Per-device status: online, last_ok, last_error, error counts.")
    agent: dict[str, Any] = Field(default_factory=dict, description="Uptime, clock, tasks and whatever else the agent reports.")


KINDS: dict[str, type[_Model]] = {"telemetry": ReadingsPayload, "events": EventsPayload, "status": StatusPayload, "health": HealthPayload}


class InvalidMessage(ValueError):
    pass


def parse_topic(topic: str, prefix: str) -> tuple[str, str, str, str]:
    """(site, gateway, kind, device) of a topic under `prefix`; InvalidMessage otherwise."""
    head = prefix + "/"
    if not topic.startswith(head):
        raise InvalidMessage(f"topic {topic!r} is outside {prefix}/")
    parts = topic[len(head) :].split("/")
    if len(parts) == 3 and parts[2] in ("status", "health", "events"):
        return parts[0], parts[1], parts[2], ""
    if len(parts) == 4 and parts[2] == "telemetry" and parts[3]:
        return parts[0], parts[1], "telemetry", parts[3]
    if len(parts) >= 3 and parts[2] in ("cmd", "data") or len(parts) == 3 and parts[2] == "result":
        # the remote-management channels (docs/security.md): commands the hub
        # sends, their results, and bundle pieces; not readings
        return parts[0], parts[1], parts[2], ""
    raise InvalidMessage(f"topic {topic!r} is not part of the telemetry contract")


def validate(topic: str, payload: bytes, prefix: str) -> tuple[str, _Model | None]:
    """(kind, model); model None for command topics (the hub's own traffic). InvalidMessage when it breaks the contract."""
    site, gateway, kind, device = parse_topic(topic, prefix)
    if kind in ("cmd", "result", "data"):
        return kind, None
    try:
        model = KINDS[kind].model_validate_json(payload)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise InvalidMessage(f"{topic}: {str(exc).splitlines()[0]} ({_first_error(exc)})") from None
    if model.gateway != gateway or model.site != site:  # type: ignore[attr-defined]
        raise InvalidMessage(f"{topic}: payload says gateway {model.gateway!r} site {model.site!r}")  # type: ignore[attr-defined]
    if kind == "telemetry" and model.device != device:  # type: ignore[attr-defined]
        raise InvalidMessage(f"{topic}: payload says device {model.device!r}")  # type: ignore[attr-defined]
    return kind, model


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)[:200]
    try:
        first = errors()[0]
    except (IndexError, TypeError, ValueError):
        return str(exc)[:200]
    loc = ".".join(str(p) for p in first.get("loc", ()))
    return f"{loc}: {first.get('msg', '')}"
