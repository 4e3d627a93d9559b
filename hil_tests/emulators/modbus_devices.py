"""Emulated Modbus devices: register maps whose values change plausibly, with switchable faults.

An EmulatedDevice is the data model of one unit id; the transports in
hil_tests.emulators.modbus_servers put several of them on a pymodbus TCP server,
an RTU line on a pty pair, or RTU over TCP. Devices built from a shipped
profile compute each point's value from the time when it is read: meters'
energy rises with the power drawn, temperature follows a day curve, noise
fluctuates.

Faults a test can switch on per device: `silent` (no answer at all, like a
missing RS-485 device), `delay` (slow answers), `exception_code` (every
request answered with that exception), `crc_error` (RTU answers with a
broken CRC), `wrong_unit` (answers carry another unit id). `strict` makes the
device answer exception 2 for any unmapped register, as many devices do.

Test and demo code: never imported by the agent at run time.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable

from drivers.codecs.modbus_registers import encode, pack_bits, unpack_bits
from drivers.modbus.points import PointConfig, load_profile

ILLEGAL_FUNCTION = 1
ILLEGAL_ADDRESS = 2
ILLEGAL_VALUE = 3


class DeviceException(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(f"exception {code}")
        self.code = code


class EmulatedDevice:
    def __init__(self, unit_id: int, *, strict: bool = False, clock: Callable[[], float] = time.monotonic) -> None:
        self.unit_id = unit_id
        self.tables: dict[str, dict[int, int]] = {"holding": {}, "input": {}, "coil": {}, "discrete": {}}
        self.strict = strict
        self.forbidden: list[tuple[str, int, int]] = []  # always exception 2, even if mapped around
        self.generators: list[Callable[[float], None]] = []
        self._clock = clock
        self._t0 = clock()
        # faults
        self.silent = False
        self.delay = 0.0
        self.exception_code: int | None = None
        self.crc_error = False
        self.wrong_unit = False
        # what happened, for assertions
        self.requests = 0
        self.reads: list[tuple[str, int, int]] = []

    def clear_faults(self) -> None:
        self.silent = False
        self.delay = 0.0
        self.exception_code = None
        self.crc_error = False
        self.wrong_unit = False

    # -- values ---------------------------------------------------------------

    def set_registers(self, table: str, address: int, regs: list[int]) -> None:
        for i, r in enumerate(regs):
            self.tables[table][address + i] = r

    def set_value(
        self,
        table: str,
        address: int,
        value: object,
        type_name: str = "uint16",
        *,
        byte_order: str = "big",
        word_order: str = "big",
        scale: float = 1,
        offset: float = 0,
        length: int | None = None,
        bit: int | None = None,
    ) -> None:
        if table in ("coil", "discrete"):
            self.tables[table][address] = 1 if value else 0
            return
        current = self.tables[table].get(address, 0)
        regs = encode(value, type_name, byte_order, word_order, scale, offset, bit, 1, length, current)
        self.set_registers(table, address, regs)

    def set_point(self, p: PointConfig, value: object) -> None:
        self.set_value(
            p.table,
            p.address,
            value,
            p.type,
            byte_order=p.byte_order or "big",
            word_order=p.word_order or "big",
            scale=p.scale,
            offset=p.offset,
            length=p.length,
            bit=p.bit,
        )

    def elapsed(self) -> float:
        return self._clock() - self._t0

    def refresh(self) -> None:
        t = self.elapsed()
        for gen in self.generators:
            gen(t)

    # -- protocol -------------------------------------------------------------

    def _check(self, table: str, address: int, count: int) -> None:
        if address + count > 65536:
            raise DeviceException(ILLEGAL_ADDRESS)
        for t, s, e in self.forbidden:
            if t == table and s <= address + count - 1 and e >= address:
                raise DeviceException(ILLEGAL_ADDRESS)
        if self.strict:
            mapped = self.tables[table]
            if any(a not in mapped for a in range(address, address + count)):
                raise DeviceException(ILLEGAL_ADDRESS)

    def read(self, table: str, address: int, count: int) -> list[int]:
        """Registers (or 0/1 bits) of a read request; raises DeviceException."""
        self.requests += 1
        if self.exception_code:
            raise DeviceException(self.exception_code)
        self._check(table, address, count)
        self.reads.append((table, address, count))
        self.refresh()
        t = self.tables[table]
        return [t.get(a, 0) for a in range(address, address + count)]

    def write(self, table: str, address: int, values: list[int]) -> None:
        self.requests += 1
        if self.exception_code:
            raise DeviceException(self.exception_code)
        if table not in ("holding", "coil"):
            raise DeviceException(ILLEGAL_FUNCTION)
        self._check(table, address, len(values))
        for i, v in enumerate(values):
            self.tables[table][address + i] = int(v)

    def handle_pdu(self, pdu: bytes) -> bytes:
        """The response PDU (function code + data) to a request PDU, exception responses included."""
        fc = pdu[0]
        try:
            return bytes((fc,)) + self._serve(fc, pdu[1:])
        except DeviceException as exc:
            return bytes((fc | 0x80, exc.code))

    def _serve(self, fc: int, data: bytes) -> bytes:
        if fc in (1, 2, 3, 4):
            if len(data) != 4:
                raise DeviceException(ILLEGAL_VALUE)
            address, count = int.from_bytes(data[0:2], "big"), int.from_bytes(data[2:4], "big")
            if fc in (1, 2):
                if not 1 <= count <= 2000:
                    raise DeviceException(ILLEGAL_VALUE)
                payload = pack_bits(self.read("coil" if fc == 1 else "discrete", address, count))
            else:
                if not 1 <= count <= 125:
                    raise DeviceException(ILLEGAL_VALUE)
                regs = self.read("holding" if fc == 3 else "input", address, count)
                payload = b"".join(r.to_bytes(2, "big") for r in regs)
            return bytes((len(payload),)) + payload
        if fc in (5, 6):
            address, value = int.from_bytes(data[0:2], "big"), int.from_bytes(data[2:4], "big")
            if fc == 5:
                if value not in (0, 0xFF00):
                    raise DeviceException(ILLEGAL_VALUE)
                self.write("coil", address, [1 if value else 0])
            else:
                self.write("holding", address, [value])
            return bytes(data[:4])
        if fc in (15, 16):
            address, count, nbytes = int.from_bytes(data[0:2], "big"), int.from_bytes(data[2:4], "big"), data[4]
            body = data[5 : 5 + nbytes]
            if fc == 15:
                self.write("coil", address, [1 if b else 0 for b in unpack_bits(body, count)])
            else:
                self.write("holding", address, [int.from_bytes(body[i : i + 2], "big") for i in range(0, 2 * count, 2)])
            return bytes(data[:4])
        raise DeviceException(ILLEGAL_FUNCTION)


# -- plausible behaviour of profile devices ----------------------------------


def _meter(points: dict[str, PointConfig], dev: EmulatedDevice, rng: random.Random, phases: int) -> Callable[[float], None]:
    energy0 = 1234.5 + rng.random() * 100

    def gen(t: float) -> None:
        vals: dict[str, float] = {}
        total_p = total_s = total_q = 0.0
        for i in range(1, phases + 1):
            v = 230.0 + 3.0 * math.sin(t / 30.0 + i) + rng.uniform(-0.3, 0.3)
            a = 4.0 + 2.0 * math.sin(t / 50.0 + 2 * i) + rng.uniform(-0.05, 0.05)
            pf = 0.92 + 0.05 * math.sin(t / 70.0 + i)
            s = v * a
            p = s * pf
            q = math.sqrt(max(s * s - p * p, 0.0))
            suffix = f"_l{i}" if phases > 1 else ""
            vals.update(
                {
                    f"voltage{suffix}": v,
                    f"current{suffix}": a,
                    f"active_power{suffix}": p,
                    f"apparent_power{suffix}": s,
                    f"reactive_power{suffix}": q,
                    f"power_factor{suffix}": pf,
                }
            )
            vals[f"energy_import_l{i}"] = energy0 / phases + p * t / 3.6e6
            total_p, total_s, total_q = total_p + p, total_s + s, total_q + q
        if phases > 1:
            vals.update(
                {
                    "voltage": sum(vals[f"voltage_l{i}"] for i in range(1, 4)) / 3,
                    "current": sum(vals[f"current_l{i}"] for i in range(1, 4)) / 3,
                    "active_power": total_p,
                    "apparent_power": total_s,
                    "reactive_power": total_q,
                    "power_factor": total_p / total_s,
                }
            )
            vals["current_sum"] = vals["current"] * 3
            for a, b in (("l1", "l2"), ("l2", "l3"), ("l3", "l1")):
                vals[f"voltage_{a}_{b}"] = vals["voltage"] * math.sqrt(3)
            vals["current_neutral"] = abs(vals["current_l1"] - vals["current_l2"]) / 2
        energy = energy0 + total_p * t / 3.6e6  # kWh rise with the power drawn
        vals.update({"frequency": 50.0 + 0.02 * math.sin(t / 20.0), "energy_import": energy, "energy_export": 0.0, "energy_total": energy, "phase_angle": 20.0})
        vals.update({"reactive_energy_import": energy * 0.3, "reactive_energy_export": 0.0, "reactive_energy_total": energy * 0.3})
        for name, p in points.items():
            if name in vals:
                dev.set_point(p, vals[name])

    return gen


def _climate(points: dict[str, PointConfig], dev: EmulatedDevice, rng: random.Random, day_seconds: float) -> Callable[[float], None]:
    def gen(t: float) -> None:
        phase = 2 * math.pi * (t / day_seconds)
        temp = 15.0 + 8.0 * math.sin(phase - math.pi / 2) + rng.uniform(-0.1, 0.1)
        rh = 60.0 - 20.0 * math.sin(phase - math.pi / 2)
        if "temperature" in points:
            dev.set_point(points["temperature"], round(temp, 1))
        if "relative_humidity" in points:
            dev.set_point(points["relative_humidity"], round(rh, 1))

    return gen


def _noise(points: dict[str, PointConfig], dev: EmulatedDevice, rng: random.Random) -> Callable[[float], None]:
    def gen(t: float) -> None:
        level = 55.0 + 8.0 * math.sin(t / 15.0) + rng.uniform(-4.0, 4.0)
        if "sound_level" in points:
            dev.set_point(points["sound_level"], round(min(max(level, 30.0), 120.0), 1))

    return gen


def profile_device(profile: str, unit_id: int = 1, *, seed: int = 1, day_seconds: float = 600.0, strict: bool = False) -> EmulatedDevice:
    """A device with the register map of a shipped profile and plausible, changing values."""
    prof = load_profile(profile)
    dev = EmulatedDevice(unit_id, strict=strict)
    points = {}
    for p in prof.points:
        points[p.name] = p.model_copy(update={"byte_order": p.byte_order or prof.byte_order, "word_order": p.word_order or prof.word_order})
        dev.set_point(points[p.name], False if p.type == "bool" else 0)  # maps every register of the profile
    rng = random.Random(seed)
    if profile.startswith("eastron_sdm"):
        dev.generators.append(_meter(points, dev, rng, 3 if profile.endswith("630") else 1))
    elif "temperature" in points:
        dev.generators.append(_climate(points, dev, rng, day_seconds))
    elif "sound_level" in points:
        dev.generators.append(_noise(points, dev, rng))
    dev.refresh()
    return dev
