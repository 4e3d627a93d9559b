"""[remote] section: commands and updates from the hub."""

from __future__ import annotations

from pydantic import Field

from drivers.base import StrictModel


class RemoteConfig(StrictModel):
    enabled: bool = Field(True, description="Accept commands from the hub on the gateway's command topic.")
