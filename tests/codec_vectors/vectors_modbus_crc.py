"""Known-answer vectors for drivers/codecs/modbus_crc.py (CPython and MicroPython)."""

from drivers.codecs import modbus_crc as m


def test_crc16_check_value():
    # The catalogue check value of CRC-16/MODBUS over "123456789".
    assert m.crc16(b"123456789") == 0x4B37
    assert m.crc16(b"") == 0xFFFF


def test_crc16_continues_over_chunks():
    assert m.crc16(b"56789", m.crc16(b"1234")) == 0x4B37


def test_build_read_holding_frame():
    # Read 10 holding registers from 0 of unit 1: the example from the spec.
    assert m.build_rtu_frame(1, bytes((3, 0, 0, 0, 10))) == bytes.fromhex("01030000000ac5cd")


def test_build_read_input_frame_eastron_voltage():
    # SDM meters: read input registers 0..1 (phase 1 voltage) of unit 1.
    assert m.build_rtu_frame(1, bytes((4, 0, 0, 0, 2))) == bytes.fromhex("01040000000271cb")


def test_crc_bytes_low_byte_first():
    assert m.crc_bytes(bytes.fromhex("110300000002")) == bytes.fromhex("c69b")


def test_check_frame():
    assert m.check_rtu_frame(bytes.fromhex("01030000000ac5cd"))
    assert not m.check_rtu_frame(bytes.fromhex("01030000000ac5ce"))
    assert not m.check_rtu_frame(bytes.fromhex("01030000000bc5cd"))
    assert not m.check_rtu_frame(b"\x01\x03")


def test_split_frame():
    unit, pdu = m.split_rtu_frame(bytes.fromhex("01030000000ac5cd"))
    assert unit == 1
    assert pdu == bytes.fromhex("030000000a")
    try:
        m.split_rtu_frame(bytes.fromhex("01030000000ac5ce"))
    except ValueError:
        pass
    else:
        raise AssertionError("bad CRC accepted")


def test_response_roundtrip():
    frame = m.build_rtu_frame(17, bytes((3, 4, 0x43, 0x66, 0, 0)))
    assert m.check_rtu_frame(frame)
    assert m.rtu_response_length(frame) == len(frame) == 9


def test_request_lengths():
    assert m.rtu_request_length(b"\x01") == 0
    assert m.rtu_request_length(bytes.fromhex("0103")) == 8
    assert m.rtu_request_length(bytes.fromhex("0106")) == 8
    assert m.rtu_request_length(bytes.fromhex("0110000a00")) == 0
    assert m.rtu_request_length(bytes.fromhex("0110000a000204")) == 13
    assert m.rtu_request_length(bytes.fromhex("010f0000000a02")) == 11
    assert m.rtu_request_length(bytes.fromhex("0141")) == -1


def test_response_lengths():
    assert m.rtu_response_length(bytes.fromhex("0183")) == 5
    assert m.rtu_response_length(bytes.fromhex("0103")) == 0
    assert m.rtu_response_length(bytes.fromhex("010304")) == 9
    assert m.rtu_response_length(bytes.fromhex("010102")) == 7
    assert m.rtu_response_length(bytes.fromhex("0110")) == 8
    assert m.rtu_response_length(bytes.fromhex("0141")) == -1


def test_read_response_size():
    assert m.read_response_size(3, 125) == 255
    assert m.read_response_size(1, 9) == 7
