"""Config models of serial ports and the streaming sensors on them (pydantic, validator only).

The running agent gets these as plain attributes (agent.config.plain): the
driver modules in drivers.serial never import this module.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from drivers.config import BusConfig, DeviceConfig


class SerialBusConfig(BusConfig):
    port: str = Field(
        description="Device path. Prefer a stable name from /dev/serial/by-id/ so the port survives re-plugging and reboots.",
    )
    baudrate: int = Field(9600, gt=0, description="Line speed in baud (SDS011, PMS5003, MaxBotix and most GPS receivers: 9600).")
    bytesize: Literal[5, 6, 7, 8] = Field(8, description="Data bits per character.")
    parity: Literal["none", "even", "odd", "mark", "space"] = Field("none", description="Parity bit.")
    stopbits: Literal[1, 1.5, 2] = Field(1, description="Stop bits.")


class StreamingSensorConfig(DeviceConfig):
    bus: str = Field(description="Name of the `serial` bus (port) the sensor is wired to.")
    report_interval: float = Field(
        60.0,
        ge=0,
        description="Seconds over which frames are aggregated into one reading per metric; 0 publishes every frame.",
    )
    stale_after: float = Field(
        10.0,
        gt=0,
        description="Seconds without a good frame after which the device is reported silent (TIMEOUT, BAD_FRAME or OFFLINE).",
    )
    recorder_chunks: int = Field(32, ge=0, le=1024, description="Raw chunks kept in the flight recorder for diagnostics.")


class Sds011Config(StreamingSensorConfig):
    pass


class Pms5003Config(StreamingSensorConfig):
    particle_counts: bool = Field(False, description="Also publish the six particle counts (per 0.1 L, above 0.3 to 10 um).")
    cf1: bool = Field(
        False,
        description="Publish the CF=1 (factory calibration) values instead of the atmospheric-environment ones; the data sheet recommends atmospheric outdoors.",
    )


class NmeaGpsConfig(StreamingSensorConfig):
    time_source: Literal["off", "validate", "set"] = Field(
        "off",
        description="Use the receiver's time: 'validate' marks the clock synchronised when it agrees with GPS; 'set' also sets it (needs CAP_SYS_TIME).",
    )
    time_tolerance: float = Field(2.0, gt=0, description="Seconds by which system and GPS time may differ and still count as agreeing.")


class UltrasonicBinConfig(StreamingSensorConfig):
    bin_depth: float = Field(gt=0, description="Depth of the bin from rim to bottom, in millimetres.")
    sensor_offset: float = Field(0.0, ge=0, description="Height of the sensor face above the bin rim, in millimetres.")
    unit: Literal["mm", "cm", "in"] = Field("mm", description="What the sensor model reports: mm (HRXL, R + 4 digits), cm or in (R + 3 digits).")
    max_range: float = Field(
        5000.0,
        gt=0,
        description="The model's 'no target' reading in millimetres (5000 for HRXL-MaxSonar, 9999 for some 10 m models); readings at or above it mean no echo.",
    )

    @model_validator(mode="after")
    def _bin_within_range(self) -> UltrasonicBinConfig:
        if self.sensor_offset + self.bin_depth >= self.max_range:
            raise ValueError(
                f"sensor_offset + bin_depth = {self.sensor_offset + self.bin_depth:g} mm is beyond the sensor's max_range {self.max_range:g} mm: "
                "an empty bin would read as 'no target'; mount the sensor lower or use a longer-range model"
            )
        return self
