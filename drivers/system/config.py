"""Config model of the gateway's own health device (pydantic, validator only)."""

from __future__ import annotations

from pydantic import Field

from drivers.config import DeviceConfig


class SystemHealthConfig(DeviceConfig):
    poll_interval: float = Field(60.0, gt=0, description="Seconds between health readings.")
    disk_path: str = Field("", description="Partition whose free space is reported; empty: the gateway's data_dir.")
