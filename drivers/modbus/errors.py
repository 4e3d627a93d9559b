"""The small set of Modbus failures the rest of the agent deals with.

pymodbus raises a different zoo of exceptions per release; drivers.modbus.adapter
maps them onto these, and each maps onto one reading status.
"""

from __future__ import annotations

from agent.readings import BAD_FRAME, ERROR, EXCEPTION, OFFLINE, TIMEOUT

# Exception codes of the Modbus application protocol spec, for messages.
EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
ILLEGAL_ADDRESS = 2


class ModbusError(Exception):
    """Base: something went wrong with one Modbus request."""

    status = ERROR


class ModbusTimeout(ModbusError):
    """No (valid) answer within the timeout: device silent, wrong unit id, wrong baud rate or wiring."""

    status = TIMEOUT


class ModbusExceptionResponse(ModbusError):
    """The device answered with an exception code."""

    status = EXCEPTION

    def __init__(self, code: int, message: str = "") -> None:
        self.code = code
        name = EXCEPTION_NAMES.get(code, "unknown")
        super().__init__(message or f"exception code {code} ({name})")


class ModbusConnectionLost(ModbusError):
    """The port or socket is not open (or just closed)."""

    status = OFFLINE


class ModbusBadFrame(ModbusError):
    """Bytes arrived but did not form a valid answer (CRC error, answer from another unit, garbage)."""

    status = BAD_FRAME
