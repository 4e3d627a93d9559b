"""Base config models of drivers and buses (pydantic).

Only the config validator imports these: the running agent receives the
validated config as plain attributes (agent.config.plain), so neither this
module nor pydantic is loaded in the long-running process.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors, never dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # Derived values (properties) the runtime needs besides the fields; they
    # are handed over with the plain config (agent.config.plain).
    runtime_attrs: ClassVar[tuple[str, ...]] = ()


class FailurePolicy(StrictModel):
    """How a device (or bus) is retried. Values are used as given, never clamped."""

    timeout: float = Field(1.0, gt=0, description="Seconds to wait for one answer.")
    retries: int = Field(1, ge=0, le=10, description="Extra attempts of a failed request within one poll.")
    backoff_initial: float = Field(1.0, gt=0, description="First wait in seconds after a failed poll before trying the device again.")
    backoff_max: float = Field(60.0, gt=0, description="Cap of the exponential backoff, in seconds.")
    backoff_jitter: float = Field(
        0.2, ge=0, le=1, description="Random share added to or taken from each wait, so devices and gateways do not retry in lockstep."
    )


class BusConfig(StrictModel):
    name: str = Field(pattern=NAME_PATTERN, description="Name the devices use to refer to this bus.")
    type: str


class DeviceConfig(StrictModel):
    name: str = Field(pattern=NAME_PATTERN, description="Device name, unique on the gateway; part of the MQTT topic.")
    driver: str
    enabled: bool = Field(True, description="A disabled device is validated but not polled.")
    poll_interval: float = Field(10.0, gt=0, description="Seconds between polls.")
    failure: FailurePolicy = Field(default_factory=FailurePolicy)  # type: ignore[arg-type]
