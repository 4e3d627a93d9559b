"""The gateway config schema, composed from the sections' own models.

Each subsystem owns its section model; drivers own their device and bus models
and reach the schema through drivers.registry. This module only assembles them
and checks what spans sections (unique names, devices on defined buses).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any, Literal, Union

from pydantic import Field, create_model, model_validator

from agent.diag.config import DiagnosticsConfig
from agent.outbox.config import StorageConfig
from agent.remote.config import RemoteConfig
from agent.uplink.config import UplinkConfig
from agent.vision.config import CameraConfig, VisionConfig
from drivers import registry
from drivers.config import NAME_PATTERN, BusConfig, DeviceConfig, StrictModel

LOG_LEVELS = ("debug", "info", "warning", "error")


class GatewaySection(StrictModel):
    id: str = Field(
        pattern=NAME_PATTERN, description="Gateway id, unique in the city; the MQTT client id and topic level. Lower case letters, digits, - and _."
    )
    site: str = Field(pattern=NAME_PATTERN, description="Site (district, cabinet group) the gateway belongs to; a topic level.")
    data_dir: str = Field("/var/lib/edge-agent", description="Where the outbox and state live; must be writable by the agent's user.")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    description: str = Field("", description="Free text for the birth message (cabinet address, installer notes).")


class ClockSection(StrictModel):
    sync_source: Literal["kernel", "assume", "never"] = Field(
        "kernel",
        description="How wall-clock sync is detected: `kernel` asks adjtimex (timesyncd, chrony, ntpd); `assume` trusts the clock (RTC fitted); `never` waits for a GPS time source.",
    )


def _check_cross_references(cfg: Any) -> Any:
    issues: list[tuple[tuple[Any, ...], str]] = []
    bus_types: dict[str, str] = {}
    for i, bus in enumerate(cfg.buses):
        if bus.name in bus_types:
            issues.append((("buses", i, "name"), f"bus name {bus.name!r} is used twice; each bus needs its own name"))
        bus_types[bus.name] = bus.type
    names: dict[str, str] = {}
    users: dict[str, list[int]] = {}
    for i, dev in enumerate(cfg.devices):
        if dev.name in names:
            issues.append((("devices", i, "name"), f"device name {dev.name!r} is already used by a {names[dev.name]}; names must be unique on the gateway"))
        names[dev.name] = "device"
        wanted = registry.driver_class(dev.driver).bus_types
        bus_name = getattr(dev, "bus", None)
        if wanted and bus_name is not None:
            if bus_name not in bus_types:
                known = ", ".join(sorted(bus_types)) or "none defined"
                issues.append((("devices", i, "bus"), f"bus {bus_name!r} is not defined in [[buses]] (defined: {known})"))
            elif bus_types[bus_name] not in wanted:
                issues.append(
                    (("devices", i, "bus"), f"bus {bus_name!r} is of type {bus_types[bus_name]!r} but driver {dev.driver!r} needs one of: {', '.join(wanted)}")
                )
            else:
                users.setdefault(bus_name, []).append(i)
                limit = registry.bus_class(bus_types[bus_name]).max_devices
                if limit is not None and len(users[bus_name]) > limit:
                    first = cfg.devices[users[bus_name][0]].name
                    issues.append(
                        (
                            ("devices", i, "bus"),
                            f"bus {bus_name!r} ({bus_types[bus_name]}) already carries device {first!r} and takes {limit}; give each sensor its own [[buses]] entry (port)",
                        )
                    )
    for i, cam in enumerate(cfg.cameras):
        if cam.name in names:
            issues.append((("cameras", i, "name"), f"camera name {cam.name!r} is already used by a {names[cam.name]}; names must be unique on the gateway"))
        names[cam.name] = "camera"
    if issues:
        from agent.config.errors import CrossReferenceError

        raise CrossReferenceError(issues)
    return cfg


def _tagged_union(models: dict[str, type], tag: str) -> Any:
    members = []
    for name, model in models.items():
        # The literal tag lets pydantic pick the model from the entry's own key
        # and lets the JSON Schema show the choices.
        members.append(create_model(model.__name__, __base__=model, **{tag: (Literal[name], ...)}))  # type: ignore[call-overload]
    if len(members) == 1:
        return members[0]
    return Annotated[Union[tuple(members)], Field(discriminator=tag)]  # noqa: UP007 - a runtime-built union


@lru_cache(maxsize=1)
def gateway_model() -> type[StrictModel]:
    """Build the GatewayConfig model from the registry (cached)."""
    device_union = _tagged_union(registry.all_driver_classes_config(), "driver")
    bus_models = registry.all_bus_classes_config()
    bus_union: Any = _tagged_union(bus_models, "type") if bus_models else BusConfig
    model = create_model(
        "GatewayConfig",
        __base__=StrictModel,
        __validators__={"_cross": model_validator(mode="after")(_check_cross_references)},
        gateway=(GatewaySection, ...),
        clock=(ClockSection, Field(default_factory=ClockSection)),
        storage=(StorageConfig, Field(default_factory=StorageConfig)),
        uplink=(UplinkConfig, Field(default_factory=UplinkConfig)),
        diagnostics=(DiagnosticsConfig, Field(default_factory=DiagnosticsConfig)),
        remote=(RemoteConfig, Field(default_factory=RemoteConfig)),
        vision=(VisionConfig, Field(default_factory=VisionConfig)),
        buses=(list[bus_union], Field(default_factory=list, description="Serial ports and network endpoints shared by devices.")),
        devices=(list[device_union], Field(default_factory=list, description="Devices polled or read by drivers.")),
        cameras=(list[CameraConfig], Field(default_factory=list, description="Cameras read by the vision worker.")),
    )
    return model


def json_schema() -> dict[str, Any]:
    schema = gateway_model().model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "edge-agent gateway configuration"
    return schema


__all__ = ["DeviceConfig", "BusConfig", "gateway_model", "json_schema", "LOG_LEVELS"]
