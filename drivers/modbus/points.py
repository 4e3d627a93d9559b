"""Register maps: points, profile loading and the checks a config needs.

A point is one value of a device: where it lives (table, address), how it is
encoded (type, byte/word order, scale, offset) and what it is called (the
metric name and unit of the Reading). Profiles in drivers/profiles/*.toml hold
the register maps of real devices; a gateway config names a profile and adds,
drops or overrides points.
"""

from __future__ import annotations

import os
import tomllib
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationError, model_validator

from drivers.codecs.modbus_registers import ALL_TYPES, BITS, BOOL, STRING, register_count
from drivers.config import StrictModel
from drivers.modbus.planner import BIT_TABLES

PROFILE_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "profiles")
METRIC_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
REGISTER_TABLES = ("holding", "input")
Table = Literal["holding", "input", "coil", "discrete"]
Order = Literal["big", "little"]


class PointConfig(StrictModel):
    runtime_attrs: ClassVar[tuple[str, ...]] = ("count", "end")
    name: str = Field(pattern=METRIC_PATTERN, description="Metric name of the readings (canonical names in docs/telemetry.md).")
    table: Table = Field("holding", description="holding (fc 3), input (fc 4), coil (fc 1) or discrete (fc 2).")
    address: int = Field(ge=0, le=65535, description="Zero-based protocol address (register 30001 in a manual is input address 0).")
    type: str = Field("uint16", description="int16, uint16, int32, uint32, int64, uint64, float32, float64, string, bool, bits.")
    length: int | None = Field(None, ge=1, le=125, description="Registers of a string.")
    bit: int | None = Field(None, ge=0, le=15, description="Bit of the register for bool and bits.")
    width: int = Field(1, ge=1, le=16, description="Width of a bits field.")
    byte_order: Order | None = Field(None, description="Byte order inside a register; default from the device or profile (big).")
    word_order: Order | None = Field(None, description="Which register holds the most significant word; default from the device or profile (big).")
    scale: float = 1.0
    offset: float = 0.0
    unit: str = Field("", description="UCUM-style unit of the value after scale and offset.")
    poll_interval: float | None = Field(None, gt=0, description="Seconds between reads of this point; default the device's poll_interval.")
    writable: bool = Field(False, description="Allow remote writes of this point.")
    min: float | None = Field(None, description="Physical range; values outside are reported as out_of_range.")
    max: float | None = None

    @model_validator(mode="after")
    def _check(self) -> PointConfig:
        if self.type not in ALL_TYPES:
            raise ValueError(f"point {self.name!r}: unknown type {self.type!r}; use one of {', '.join(ALL_TYPES)}")
        if self.table in BIT_TABLES and self.type != BOOL:
            raise ValueError(f'point {self.name!r}: a {self.table} holds one bit; set type = "bool" (not {self.type!r})')
        if self.type == STRING and not self.length:
            raise ValueError(f"point {self.name!r}: a string needs length = <registers> (2 characters each)")
        if self.type != STRING and self.length is not None:
            raise ValueError(f'point {self.name!r}: length only applies to type = "string"; {self.type} occupies {register_count(self.type)} register(s)')
        if self.bit is not None and self.type not in (BOOL, BITS):
            raise ValueError(f"point {self.name!r}: bit only applies to bool and bits points")
        if self.type == BITS and (self.bit or 0) + self.width > 16:
            raise ValueError(f"point {self.name!r}: bits {self.bit}..{(self.bit or 0) + self.width - 1} do not fit one 16-bit register")
        end = self.address + self.count - 1
        if end > 65535:
            raise ValueError(
                f"point {self.name!r}: {self.type} at address {self.address} needs registers up to {end}, beyond 65535; check the address (zero-based, without the 3xxxx/4xxxx prefix)"
            )
        return self

    @property
    def count(self) -> int:
        """Registers (or bits) the point occupies."""
        if self.table in BIT_TABLES:
            return 1
        return register_count(self.type, self.length)

    @property
    def end(self) -> int:
        return self.address + self.count - 1


class PointOverride(StrictModel):
    """Fields of a profile point a gateway changes (everything else stays)."""

    address: int | None = Field(None, ge=0, le=65535)
    type: str | None = None
    byte_order: Order | None = None
    word_order: Order | None = None
    scale: float | None = None
    offset: float | None = None
    unit: str | None = None
    poll_interval: float | None = Field(None, gt=0)
    writable: bool | None = None
    min: float | None = None
    max: float | None = None


class ForbiddenRange(StrictModel):
    """Addresses the device rejects; blocks never span them."""

    table: Table = "holding"
    start: int = Field(ge=0, le=65535)
    end: int = Field(ge=0, le=65535)

    @model_validator(mode="after")
    def _order(self) -> ForbiddenRange:
        if self.end < self.start:
            raise ValueError(f"forbidden range {self.start}..{self.end}: end is before start")
        return self


class Profile(StrictModel):
    name: str
    manufacturer: str = ""
    model: str = ""
    description: str = ""
    manual: str = Field("", description="Where the register map comes from.")
    byte_order: Order = "big"
    word_order: Order = "big"
    max_gap: int | None = Field(None, ge=0, le=124)
    max_registers: int | None = Field(None, ge=1, le=125)
    forbidden: list[ForbiddenRange] = Field(default_factory=list)
    points: list[PointConfig] = Field(default_factory=list)


def profile_names() -> list[str]:
    return sorted(f[:-5] for f in os.listdir(PROFILE_DIR) if f.endswith(".toml"))


def load_profile(name: str) -> Profile:
    """A shipped profile by name, or a TOML file by path (ending in .toml)."""
    path = name if name.endswith(".toml") else os.path.join(PROFILE_DIR, f"{name}.toml")
    if not os.path.isfile(path):
        raise ValueError(f"profile {name!r} not found; shipped profiles: {', '.join(profile_names())} (or give the path of a .toml file)")
    with open(path, "rb") as fh:
        try:
            data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"profile {path}: not valid TOML: {exc}") from exc
    try:
        return Profile(**data.get("profile", {}), points=data.get("points", []))
    except ValidationError as exc:
        raise ValueError(f"profile {path} is invalid: {exc}") from exc


def merge_points(
    profile: Profile | None,
    points: list[PointConfig],
    drop: list[str],
    override: dict[str, PointOverride],
    byte_order: str | None,
    word_order: str | None,
) -> list[PointConfig]:
    """The device's effective points: profile points minus dropped, overridden, plus added/replaced ones.

    Byte and word order are resolved here (point, else device, else profile, else big).
    """
    base = {p.name: p for p in profile.points} if profile else {}
    for name in drop:
        if name not in base:
            raise ValueError(f"drop: the profile has no point {name!r}; its points are {', '.join(base) or 'none'}")
        del base[name]
    for name, ov in override.items():
        if name not in base:
            raise ValueError(f"override: the profile has no point {name!r}; its points are {', '.join(base) or 'none'}")
        changes: dict[str, Any] = {k: v for k, v in ov.model_dump().items() if v is not None}
        base[name] = PointConfig(**{**base[name].model_dump(), **changes})
    seen: set[str] = set()
    for p in points:
        if p.name in seen:
            raise ValueError(f"point {p.name!r} is listed twice in points")
        seen.add(p.name)
        base[p.name] = p  # a point named like a profile point replaces it
    default_bo = byte_order or (profile.byte_order if profile else "big")
    default_wo = word_order or (profile.word_order if profile else "big")
    out = []
    for p in base.values():
        out.append(p.model_copy(update={"byte_order": p.byte_order or default_bo, "word_order": p.word_order or default_wo}))
    return out


def check_overlaps(points: list[PointConfig], forbidden: list[ForbiddenRange]) -> None:
    """Two points may share a register only as different bits of it; no point may sit in a forbidden range."""
    by_table: dict[str, list[PointConfig]] = {}
    for p in points:
        by_table.setdefault(p.table, []).append(p)
    for table, pts in by_table.items():
        pts.sort(key=lambda p: (p.address, p.end))
        for a, b in zip(pts, pts[1:], strict=False):
            if b.address <= a.end:
                if a.count == 1 and b.count == 1 and a.type in (BOOL, BITS) and b.type in (BOOL, BITS):
                    abits = set(range(a.bit or 0, (a.bit or 0) + (a.width if a.type == BITS else 1)))
                    bbits = set(range(b.bit or 0, (b.bit or 0) + (b.width if b.type == BITS else 1)))
                    if not abits & bbits:
                        continue
                raise ValueError(
                    f"points {a.name!r} ({table} {a.address}..{a.end}) and {b.name!r} ({table} {b.address}..{b.end}) overlap; "
                    f"check the addresses and types (a {a.type} occupies {a.count} register(s))"
                )
    for fr in forbidden:
        for p in by_table.get(fr.table, []):
            if p.address <= fr.end and p.end >= fr.start:
                raise ValueError(
                    f"point {p.name!r} ({fr.table} {p.address}..{p.end}) lies in the forbidden range {fr.start}..{fr.end}; drop the point or fix the range"
                )
