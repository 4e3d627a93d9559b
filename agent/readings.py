"""The one reading model every driver produces.

A Reading is a measured value of one metric of one device, stamped with enough
time information to be corrected later: the Raspberry Pi has no real-time clock,
so the wall clock may be wrong until NTP or GPS has synchronised it. The pair
(boot_id, mono_ns) is always right within a boot; `wall` is what the wall clock
said at the time and `synced` says whether it could be trusted.

Metric names are lower_snake_case and carry the quantity, not the unit
(`temperature`, `active_power`, `pm2_5`, `sound_level`); units are UCUM-style
strings (`Cel`, `W`, `kWh`, `ug/m3`, `dB(A)`, `%`). docs/telemetry.md lists
the canonical names so a city's platform can aggregate across gateways.
"""

from __future__ import annotations

Value = float | int | str | bool | None

# Point status values. Anything other than OK carries value None (or the last
# raw value for diagnostics) and tells the hub why there is no number.
OK = "ok"
TIMEOUT = "timeout"  # device did not answer in time
EXCEPTION = "exception"  # device answered with a protocol exception (detail names the code)
BAD_FRAME = "bad_frame"  # checksum or framing error on the line
OFFLINE = "offline"  # bus or port not reachable
OUT_OF_RANGE = "out_of_range"  # decoded, but outside the sensor's physical range
ERROR = "error"  # anything else, detail says what

STATUSES = (OK, TIMEOUT, EXCEPTION, BAD_FRAME, OFFLINE, OUT_OF_RANGE, ERROR)


class Reading:
    """One value of one metric of one device at one instant.

    `seq` is assigned by the outbox when the reading is committed; drivers
    leave it at 0.
    """

    __slots__ = (
        "device",
        "metric",
        "value",
        "unit",
        "status",
        "detail",
        "boot_id",
        "mono_ns",
        "wall",
        "synced",
        "seq",
    )

    def __init__(
        self,
        device: str,
        metric: str,
        value: Value,
        unit: str = "",
        *,
        status: str = OK,
        detail: str = "",
        boot_id: str,
        mono_ns: int,
        wall: float,
        synced: bool,
        seq: int = 0,
    ) -> None:
        self.device = device
        self.metric = metric
        self.value = value
        self.unit = unit
        self.status = status
        self.detail = detail
        self.boot_id = boot_id
        self.mono_ns = mono_ns
        self.wall = wall
        self.synced = synced
        self.seq = seq

    @property
    def ok(self) -> bool:
        return self.status == OK

    def as_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Reading):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __repr__(self) -> str:
        extra = "" if self.status == OK else f" status={self.status} {self.detail}".rstrip()
        return f"<Reading {self.device}/{self.metric}={self.value!r}{self.unit and ' ' + self.unit}{extra} seq={self.seq}>"
