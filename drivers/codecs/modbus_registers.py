"""Decode and encode values held in Modbus registers, as pure functions.

MicroPython-compatible: no typing, dataclasses or enum; only `struct`.

A register is a 16-bit unsigned int. Multi-register values are laid out by
two independent choices that devices make differently:
- byte order: the order of the two bytes inside each register ("big" is the
  Modbus standard, "little" swaps them);
- word order: which register holds the most significant word ("big": the
  first one, the usual case; "little": the last one, common on PLCs and some
  meters, called "word swap" or "CDAB").
The raw value is then `raw * scale + offset`.
"""

import struct

# type name -> (registers, struct code)
TYPES = {
    "int16": (1, "h"),
    "uint16": (1, "H"),
    "int32": (2, "i"),
    "uint32": (2, "I"),
    "int64": (4, "q"),
    "uint64": (4, "Q"),
    "float32": (2, "f"),
    "float64": (4, "d"),
}
# Variable-size or sub-register types.
STRING = "string"  # `length` registers, 2 characters each
BOOL = "bool"  # one bit of a register (`bit`), or the whole register != 0
BITS = "bits"  # an unsigned field of `width` bits starting at `bit`
ALL_TYPES = tuple(sorted(TYPES)) + (STRING, BOOL, BITS)
ORDERS = ("big", "little")

_INT_RANGES = {
    "int16": (-(1 << 15), (1 << 15) - 1),
    "uint16": (0, (1 << 16) - 1),
    "int32": (-(1 << 31), (1 << 31) - 1),
    "uint32": (0, (1 << 32) - 1),
    "int64": (-(1 << 63), (1 << 63) - 1),
    "uint64": (0, (1 << 64) - 1),
}


def register_count(type_name, length=None):
    """Registers a value of `type_name` occupies (`length` for strings)."""
    if type_name in TYPES:
        return TYPES[type_name][0]
    if type_name == STRING:
        if not length or length < 1:
            raise ValueError("a string needs length >= 1 (registers)")
        return length
    if type_name in (BOOL, BITS):
        return 1
    raise ValueError("unknown register type {!r}; known: {}".format(type_name, ", ".join(ALL_TYPES)))


def _check_orders(byte_order, word_order):
    if byte_order not in ORDERS or word_order not in ORDERS:
        raise ValueError("byte_order and word_order must be 'big' or 'little'")


def registers_to_bytes(registers, byte_order="big", word_order="big"):
    """Bytes of `registers` normalised to big-endian, most significant word first."""
    _check_orders(byte_order, word_order)
    regs = list(registers)
    if word_order == "little":
        regs.reverse()
    out = bytearray()
    for r in regs:
        if not 0 <= r <= 0xFFFF:
            raise ValueError(f"register value out of 0..65535: {r!r}")
        if byte_order == "big":
            out.append(r >> 8)
            out.append(r & 0xFF)
        else:
            out.append(r & 0xFF)
            out.append(r >> 8)
    return bytes(out)


def bytes_to_registers(data, byte_order="big", word_order="big"):
    """Inverse of `registers_to_bytes`: big-endian bytes to registers in device order."""
    _check_orders(byte_order, word_order)
    if len(data) % 2:
        raise ValueError("odd number of bytes for registers")
    regs = []
    for i in range(0, len(data), 2):
        if byte_order == "big":
            regs.append((data[i] << 8) | data[i + 1])
        else:
            regs.append((data[i + 1] << 8) | data[i])
    if word_order == "little":
        regs.reverse()
    return regs


def _scaled(raw, scale, offset):
    if scale == 1 and offset == 0:
        return raw
    inv = 1 / scale if scale else 0
    if 0 < scale < 1 and abs(inv - round(inv)) < 1e-9:
        # 71 / 10 is 7.1 but 71 * 0.1 is 7.1000000000000005
        return raw / round(inv) + offset
    return raw * scale + offset


def decode(registers, type_name, byte_order="big", word_order="big", scale=1, offset=0, bit=None, width=1):
    """Value of `type_name` held in `registers` (exactly as many as the type needs).

    Strings are decoded as ASCII/UTF-8 with trailing NULs and spaces removed;
    bool and bits ignore scale and offset.
    """
    n = register_count(type_name, len(registers) if type_name == STRING else None)
    if len(registers) != n:
        raise ValueError(f"{type_name} needs {n} registers, got {len(registers)}")
    if type_name == BOOL:
        reg = registers[0]
        if bit is None:
            return reg != 0
        return bool((reg >> bit) & 1)
    if type_name == BITS:
        start = bit or 0
        return (registers[0] >> start) & ((1 << width) - 1)
    data = registers_to_bytes(registers, byte_order, word_order)
    if type_name == STRING:
        end = len(data)
        while end and data[end - 1] in (0, 32):
            end -= 1
        return data[:end].decode()
    code = TYPES[type_name][1]
    raw = struct.unpack(">" + code, data)[0]
    if code == "f":
        raw = _short_float32(raw, data)
    return _scaled(raw, scale, offset)


def _short_float32(x, data):
    """The shortest decimal that is the same float32: 232.8123, not 232.81230163574219.

    A float32 carries 6 to 9 significant digits; the rest of its float64
    expansion is noise that would otherwise travel to the hub.
    """
    for fmt in ("%.6g", "%.7g", "%.8g"):
        y = float(fmt % x)
        if struct.pack(">f", y) == data:
            return y
    return x


def encode(value, type_name, byte_order="big", word_order="big", scale=1, offset=0, bit=None, width=1, length=None, current=0):
    """Registers holding `value`; the inverse of `decode`.

    For bool and bits, `current` is the register the field lives in (its
    other bits are kept). For strings, `length` is the register count (the
    text is padded with NULs; too long a text is an error, not truncated).
    """
    if type_name == BOOL:
        if bit is None:
            return [1 if value else 0]
        mask = 1 << bit
        return [(current | mask) if value else (current & ~mask & 0xFFFF)]
    if type_name == BITS:
        start = bit or 0
        top = (1 << width) - 1
        v = int(value)
        if not 0 <= v <= top:
            raise ValueError(f"value {value!r} does not fit {width} bits")
        return [(current & ~(top << start) & 0xFFFF) | (v << start)]
    if type_name == STRING:
        n = register_count(STRING, length)
        raw = value.encode() if isinstance(value, str) else bytes(value)
        if len(raw) > 2 * n:
            raise ValueError(f"text of {len(raw)} bytes does not fit {n} registers")
        raw = raw + b"\x00" * (2 * n - len(raw))
        return bytes_to_registers(raw, byte_order, word_order)
    if type_name not in TYPES:
        register_count(type_name)  # raises with the list of known types
    raw = value
    if scale != 1 or offset != 0:
        raw = (value - offset) / scale
    code = TYPES[type_name][1]
    if code in "fd":
        raw = float(raw)
    else:
        raw = int(round(raw))
        lo, hi = _INT_RANGES[type_name]
        if not lo <= raw <= hi:
            raise ValueError(f"{value!r} is outside {type_name} range {lo}..{hi}")
    return bytes_to_registers(struct.pack(">" + code, raw), byte_order, word_order)


def unpack_bits(data, count):
    """Coil/discrete-input bits of a read response payload (LSB of byte 0 first)."""
    if len(data) * 8 < count:
        raise ValueError(f"{len(data)} bytes hold fewer than {count} bits")
    return [bool((data[i >> 3] >> (i & 7)) & 1) for i in range(count)]


def pack_bits(bits):
    """Inverse of `unpack_bits`: bytes with bit i at byte i // 8, position i % 8."""
    out = bytearray((len(bits) + 7) // 8)
    for i, b in enumerate(bits):
        if b:
            out[i >> 3] |= 1 << (i & 7)
    return bytes(out)
