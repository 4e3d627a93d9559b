"""Property-based fuzzing of the Modbus codecs: hostile bytes never escape as crashes.

Every parser gets at least 10,000 generated cases (derandomized, so failures
reproduce). Each input must give a value or a classified error (ValueError),
never another exception; a frame with a valid CRC always splits into unit and
PDU; and integer and float values round-trip through encode and decode in every
byte and word order.
"""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.codecs import modbus_crc, modbus_registers

CASES = 10_000
FUZZ = settings(max_examples=CASES, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))

ORDERS = st.sampled_from(["big", "little"])
NUMERIC = ["int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"]


@FUZZ
@given(st.binary(max_size=300))
def test_rtu_frame_checks_never_raise_and_agree(frame: bytes) -> None:
    ok = modbus_crc.check_rtu_frame(frame)
    try:
        unit, pdu = modbus_crc.split_rtu_frame(frame)
    except ValueError:
        assert not ok
    else:
        assert ok and unit == frame[0] and pdu == frame[1:-2]
    for length in (modbus_crc.rtu_response_length(frame), modbus_crc.rtu_request_length(frame)):
        assert length in (-1, 0) or length >= 5


@FUZZ
@given(st.integers(0, 255), st.binary(min_size=1, max_size=252), st.integers(0, 255), st.integers(0, 7))
def test_a_built_frame_checks_and_any_single_bit_flip_is_caught(unit: int, pdu: bytes, pos: int, bit: int) -> None:
    frame = modbus_crc.build_rtu_frame(unit, pdu)
    assert modbus_crc.split_rtu_frame(frame) == (unit, pdu)
    damaged = bytearray(frame)
    damaged[pos % len(frame)] ^= 1 << bit
    assert not modbus_crc.check_rtu_frame(bytes(damaged)), "CRC-16 detects every single-bit error"


@FUZZ
@given(
    st.sampled_from(NUMERIC + ["string", "bool", "bits"]),
    st.lists(st.integers(0, 0xFFFF), min_size=0, max_size=6),
    ORDERS,
    ORDERS,
    st.integers(0, 15),
)
def test_decode_of_any_registers_gives_a_value_or_a_classified_error(type_name: str, regs: list[int], bo: str, wo: str, bit: int) -> None:
    try:
        value = modbus_registers.decode(regs, type_name, bo, wo, bit=bit if type_name in ("bool", "bits") else None)
    except ValueError:
        return  # wrong register count, or bytes that are not text: classified, not a crash
    if type_name == "string":
        assert isinstance(value, str)
    elif type_name == "bool":
        assert isinstance(value, bool)
    else:
        assert isinstance(value, (int, float))


@FUZZ
@given(st.sampled_from(NUMERIC), st.data(), ORDERS, ORDERS)
def test_numbers_round_trip_in_every_order(type_name: str, data: st.DataObject, bo: str, wo: str) -> None:
    n = modbus_registers.register_count(type_name)
    regs = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=n, max_size=n))
    value = modbus_registers.decode(regs, type_name, bo, wo)
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return
    again = modbus_registers.decode(modbus_registers.encode(value, type_name, bo, wo), type_name, bo, wo)
    assert again == value
