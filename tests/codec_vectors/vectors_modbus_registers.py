"""Known-answer vectors for drivers/codecs/modbus_registers.py (CPython and MicroPython)."""

from drivers.codecs import modbus_registers as m

F1 = [0x3F80, 0x0000]  # 1.0 as float32, ABCD


def close(a, b):
    return abs(a - b) < 1e-9


def test_float32_all_four_orders():
    assert m.decode([0x4366, 0x0000], "float32") == 230.0
    assert m.decode(F1, "float32", "big", "big") == 1.0
    assert m.decode([0x0000, 0x3F80], "float32", "big", "little") == 1.0  # CDAB
    assert m.decode([0x803F, 0x0000], "float32", "little", "big") == 1.0  # BADC
    assert m.decode([0x0000, 0x803F], "float32", "little", "little") == 1.0  # DCBA


def test_float32_shortest_decimal():
    # 232.8123 as float32 is 232.81230163574219 as a double; the decoder gives
    # the shortest decimal with the same float32 bits.
    assert m.decode(m.encode(232.8123, "float32"), "float32") == 232.8123
    assert m.decode(m.encode(0.1, "float32"), "float32") == 0.1
    assert m.decode(m.encode(16777217.0, "float32"), "float32") == 16777216.0
    assert m.decode([0x3F9D, 0xF3B6], "float32") == 1.234


def test_float32_encode_orders():
    assert m.encode(230.0, "float32") == [0x4366, 0x0000]
    assert m.encode(1.0, "float32", "little", "little") == [0x0000, 0x803F]
    assert m.encode(-2.5, "float32", "big", "little") == [0x0000, 0xC020]


def test_int16_uint16():
    assert m.decode([0xFFFF], "int16") == -1
    assert m.decode([0xFFFF], "uint16") == 65535
    assert m.decode([0x8000], "int16") == -32768
    assert m.decode([0x0100], "uint16", "little") == 1
    assert m.encode(-1, "int16") == [0xFFFF]


def test_int32_uint32():
    assert m.decode([0xFFFF, 0xFFFE], "int32") == -2
    assert m.decode([0xFFFE, 0xFFFF], "int32", "big", "little") == -2
    assert m.decode([0x1234, 0x5678], "uint32") == 0x12345678
    assert m.decode([0x7856, 0x3412], "uint32", "little", "little") == 0x12345678
    assert m.encode(0x12345678, "uint32", "little", "big") == [0x3412, 0x7856]


def test_int64_uint64():
    assert m.decode([0xFFFF] * 4, "int64") == -1
    v = 0x0102030405060708
    assert m.decode([0x0102, 0x0304, 0x0506, 0x0708], "uint64") == v
    assert m.decode([0x0708, 0x0506, 0x0304, 0x0102], "uint64", "big", "little") == v
    assert m.encode(v, "uint64", "little", "little") == [0x0807, 0x0605, 0x0403, 0x0201]
    assert m.encode(-(1 << 63), "int64") == [0x8000, 0, 0, 0]


def test_float64():
    assert m.decode([0x3FF0, 0, 0, 0], "float64") == 1.0
    assert m.decode([0, 0, 0, 0x3FF0], "float64", "big", "little") == 1.0
    assert m.encode(-2.0, "float64") == [0xC000, 0, 0, 0]


def test_scale_offset():
    assert close(m.decode([235], "int16", scale=0.1), 23.5)
    assert m.decode([71], "int16", scale=0.1) == 7.1  # exact, not 7.1000000000000005
    assert m.decode([12345], "uint16", scale=0.01) == 123.45
    assert m.decode([3], "uint16", scale=2.5) == 7.5
    assert close(m.decode([0xFF9C], "int16", scale=0.1), -10.0)
    assert close(m.decode([1000], "uint16", scale=0.01, offset=-5), 5.0)
    assert m.encode(23.5, "int16", scale=0.1) == [235]
    assert m.encode(5.0, "uint16", scale=0.01, offset=-5) == [1000]


def test_encode_range_checked():
    for value, type_name in ((70000, "uint16"), (-1, "uint32"), (40000, "int16")):
        try:
            m.encode(value, type_name)
        except ValueError:
            continue
        raise AssertionError(f"{value!r} accepted as {type_name}")


def test_string():
    regs = [0x5344, 0x4D36, 0x3330, 0x0000]
    assert m.decode(regs, "string") == "SDM630"
    assert m.encode("SDM630", "string", length=4) == regs
    assert m.decode([0x4453, 0x364D], "string", "little") == "SDM6"
    try:
        m.encode("too long", "string", length=2)
    except ValueError:
        pass
    else:
        raise AssertionError("long text truncated silently")


def test_bool_and_bits():
    assert m.decode([0x0004], "bool", bit=2) is True
    assert m.decode([0x0004], "bool", bit=1) is False
    assert m.decode([0x0000], "bool") is False
    assert m.decode([0x0100], "bool") is True
    assert m.decode([0xABCD], "bits", bit=4, width=8) == 0xBC
    assert m.encode(True, "bool", bit=3, current=0x0001) == [0x0009]
    assert m.encode(False, "bool", bit=0, current=0x0009) == [0x0008]
    assert m.encode(0x5, "bits", bit=4, width=4, current=0xFFFF) == [0xFF5F]


def test_register_count_and_errors():
    assert m.register_count("float64") == 4
    assert m.register_count("string", 8) == 8
    try:
        m.decode([1, 2], "int16")
    except ValueError:
        pass
    else:
        raise AssertionError("wrong register count accepted")
    try:
        m.register_count("float16")
    except ValueError as exc:
        assert "float32" in str(exc)
    else:
        raise AssertionError("unknown type accepted")


def test_bit_packing():
    bits = [True, False, True, True, False, False, False, False, True]
    data = m.pack_bits(bits)
    assert data == bytes((0x0D, 0x01))
    assert m.unpack_bits(data, 9) == bits
    assert m.unpack_bits(bytes((0xCD, 0x6B, 0x05)), 19)[:8] == [True, False, True, True, False, False, True, True]
