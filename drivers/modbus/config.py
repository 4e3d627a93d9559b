"""Config models of the Modbus buses and devices (pydantic, validator only).

The running agent gets these as plain attributes (agent.config.plain):
drivers.modbus.bus and drivers.modbus.driver never import this module.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, PrivateAttr, model_validator

from drivers.config import BusConfig, DeviceConfig
from drivers.modbus.planner import MAX_REGISTERS
from drivers.modbus.points import ForbiddenRange, PointConfig, PointOverride, check_overlaps, load_profile, merge_points


class _ModbusBusConfig(BusConfig):
    min_gap: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Minimum silent time in seconds between the end of one answer and the next request (added for slow devices; the RTU 3.5-character gap is always kept).",
    )
    flight_recorder: int = Field(64, ge=0, le=10000, description="How many raw frames to keep for error reports and diagnostics bundles (0: off).")
    reconnect_initial: float = Field(1.0, gt=0, description="First wait in seconds before reopening a failed port or socket.")
    reconnect_max: float = Field(30.0, gt=0, description="Cap of the reconnect backoff in seconds.")


class ModbusTcpBusConfig(_ModbusBusConfig):
    type: Literal["modbus_tcp"]
    host: str = Field(min_length=1, description="Host name or IP address of the Modbus TCP server.")
    port: int = Field(502, ge=1, le=65535)
    reconnect_after_timeouts: int = Field(
        3, ge=0, description="Close and reopen the socket after this many timeouts in a row (0: never); catches half-open connections."
    )


class ModbusRtuBusConfig(_ModbusBusConfig):
    type: Literal["modbus_rtu"]
    port: str = Field(min_length=1, description="Serial device, preferably a stable /dev/serial/by-id/... path.")
    baudrate: int = Field(9600, ge=300, le=4_000_000)
    parity: Literal["N", "E", "O"] = "N"
    bytesize: Literal[7, 8] = 8
    stopbits: Literal[1, 2] = 1


class ModbusRtuOverTcpBusConfig(_ModbusBusConfig):
    type: Literal["modbus_rtu_over_tcp"]
    host: str = Field(min_length=1, description="Serial device server (transparent RS-485 to TCP converter).")
    port: int = Field(502, ge=1, le=65535)
    baudrate: int | None = Field(None, ge=300, le=4_000_000, description="Baud rate of the RS-485 line behind the converter, to keep the inter-frame gap.")
    reconnect_after_timeouts: int = Field(
        0,
        ge=0,
        description="Close and reopen the socket after this many timeouts in a row (0: never, since a silent device behind the converter is not a broken socket).",
    )


DEFAULT_MAX_GAP = 8


class ModbusDeviceConfig(DeviceConfig):
    driver: Literal["modbus"]
    bus: str = Field(description="Name of a [[buses]] entry of type modbus_tcp, modbus_rtu or modbus_rtu_over_tcp.")
    unit_id: int = Field(1, ge=0, le=255, description="Modbus unit (slave) id; 1..247 on RS-485, often 1 or 255 on Modbus TCP.")
    profile: str | None = Field(None, description="Shipped profile name (see docs/modbus.md) or path of a profile .toml file.")
    points: list[PointConfig] = Field(default_factory=list, description="Points added to the profile; one named like a profile point replaces it.")
    drop: list[str] = Field(default_factory=list, description="Profile points not to read.")
    override: dict[str, PointOverride] = Field(default_factory=dict, description="Per-point changes to profile points, e.g. scale.")
    byte_order: Literal["big", "little"] | None = Field(None, description="Default byte order of this device's points (else the profile's).")
    word_order: Literal["big", "little"] | None = Field(None, description="Default word order of this device's points (else the profile's).")
    max_gap: int | None = Field(None, ge=0, le=124, description=f"Unmapped registers a block read may bridge (default: profile, else {DEFAULT_MAX_GAP}).")
    max_registers: int | None = Field(None, ge=1, le=125, description="Largest block the device accepts (default 125).")
    forbidden: list[ForbiddenRange] = Field(default_factory=list, description="Address ranges the device rejects; blocks never span them.")

    # what the profile, drop, override and device defaults resolve to; the
    # driver reads these, never the raw fields above
    runtime_attrs: ClassVar[tuple[str, ...]] = ("resolved_points", "resolved_forbidden", "resolved_max_gap", "resolved_max_registers")
    _points: list[PointConfig] = PrivateAttr(default_factory=list)
    _forbidden: list[ForbiddenRange] = PrivateAttr(default_factory=list)
    _max_gap: int = PrivateAttr(DEFAULT_MAX_GAP)
    _max_registers: int = PrivateAttr(MAX_REGISTERS)

    @model_validator(mode="after")
    def _resolve(self) -> ModbusDeviceConfig:
        profile = load_profile(self.profile) if self.profile else None
        if profile is None and (self.drop or self.override):
            raise ValueError('drop and override change profile points, but no profile is set; add profile = "..." or list the points')
        pts = merge_points(profile, self.points, self.drop, self.override, self.byte_order, self.word_order)
        if not pts:
            raise ValueError('the device has no points; set profile = "..." (see docs/modbus.md) or add [[devices.points]]')
        forbidden = list(profile.forbidden if profile else []) + list(self.forbidden)
        check_overlaps(pts, forbidden)
        for p in pts:
            if p.writable and p.table in ("input", "discrete"):
                raise ValueError(
                    f"point {p.name!r}: {p.table} {'registers' if p.table == 'input' else 'inputs'} are read-only; writable needs table holding or coil"
                )
        self._points = pts
        self._forbidden = forbidden
        self._max_gap = self.max_gap if self.max_gap is not None else (profile.max_gap if profile and profile.max_gap is not None else DEFAULT_MAX_GAP)
        self._max_registers = self.max_registers or (profile.max_registers if profile and profile.max_registers else MAX_REGISTERS)
        return self

    @property
    def resolved_points(self) -> list[PointConfig]:
        return list(self._points)

    @property
    def resolved_forbidden(self) -> list[ForbiddenRange]:
        return list(self._forbidden)

    @property
    def resolved_max_gap(self) -> int:
        return self._max_gap

    @property
    def resolved_max_registers(self) -> int:
        return self._max_registers
