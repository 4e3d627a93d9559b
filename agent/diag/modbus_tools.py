"""`diag modbus scan` and `diag modbus read`: probing and side-by-side decoding.

The same probe runs through the agent's own bus (agent running: no fight over
the port, requests interleave with polling) or through a client opened here
(agent stopped). Decoding uses drivers.codecs.modbus_registers, the codec the
drivers use, so what the table shows is what a profile entry would produce.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from drivers.codecs import modbus_registers as regs
from drivers.modbus.errors import ModbusBadFrame, ModbusConnectionLost, ModbusError, ModbusExceptionResponse, ModbusTimeout

# (op, unit, address, arg, timeout) -> result, the signature of ModbusBus.request
Request = Callable[[str, int, int, Any, float], Awaitable[Any]]

GATEWAY_CODES = (10, 11)  # gateway path unavailable, target device failed to respond
TABLES = ("holding", "input", "coil", "discrete")
ORDER_NAMES = {("big", "big"): "ABCD", ("little", "big"): "BADC", ("big", "little"): "CDAB", ("little", "little"): "DCBA"}


def read_op(table: str, count: int) -> tuple[str, tuple[str, int]]:
    if table in ("holding", "input"):
        return "read_registers", (table, count)
    if table in ("coil", "discrete"):
        return "read_bits", (table, count)
    raise ValueError(f"unknown table {table!r}; use one of {', '.join(TABLES)}")


async def probe(request: Request, unit: int, table: str, address: int, timeout: float) -> dict[str, Any]:
    """Does `unit` answer? An exception response counts: a device is there."""
    op, arg = read_op(table, 1)
    started = time.monotonic()
    out: dict[str, Any] = {"unit": unit}
    try:
        value = await request(op, unit, address, arg, timeout)
        out.update(answered=True, result="ok", value=value[0])
    except ModbusExceptionResponse as exc:
        if exc.code in GATEWAY_CODES:
            # a TCP gateway saying nobody answered behind it: no device
            out.update(answered=False, result="gateway_no_response", detail=str(exc))
        else:
            out.update(answered=True, result="exception", detail=str(exc))
    except ModbusTimeout as exc:
        out.update(answered=False, result="timeout", detail=str(exc))
    except ModbusBadFrame as exc:
        # Bytes came back: someone is on the line, maybe at another speed or id.
        out.update(answered=False, result="bad_frame", detail=str(exc))
    except ModbusConnectionLost:
        raise
    except ModbusError as exc:
        out.update(answered=False, result="error", detail=str(exc))
    out["ms"] = round((time.monotonic() - started) * 1000, 1)
    return out


async def scan_units(
    request: Request,
    units: list[int],
    *,
    table: str = "holding",
    address: int = 0,
    timeout: float = 0.3,
    on_result: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    found, noise = [], []
    for unit in units:
        res = await probe(request, unit, table, address, timeout)
        if res["answered"]:
            found.append(res)
        elif res["result"] == "bad_frame":
            noise.append(res)
        if on_result is not None:
            await on_result(res)
    return {"found": found, "noise": noise, "tried": len(units)}


async def read_range(request: Request, unit: int, table: str, address: int, count: int, timeout: float) -> list[Any]:
    op, arg = read_op(table, count)
    values = await request(op, unit, address, arg, timeout)
    return [bool(v) if op == "read_bits" else int(v) for v in values]


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        return float(f"{v:.7g}")
    return v


def decode_all(registers: list[int]) -> dict[str, Any]:
    """Every numeric type in every byte/word order at every start offset, plus text.

    Result: {"columns": ["int16", ...], "rows": [{"offset": 0, "order": "ABCD", "int16": ..., ...}], "ascii": "..."}
    """
    columns = ["uint16", "int16", "uint32", "int32", "float32", "uint64", "int64", "float64"]
    rows = []
    for offset in range(len(registers)):
        for (bo, wo), name in ORDER_NAMES.items():
            row: dict[str, Any] = {"offset": offset, "order": name}
            for t in columns:
                n = regs.TYPES[t][0]
                if n == 1 and wo == "little":
                    row[t] = ""  # word order means nothing for one register
                    continue
                chunk = registers[offset : offset + n]
                row[t] = _fmt(regs.decode(chunk, t, bo, wo)) if len(chunk) == n else ""
            rows.append(row)
    text = regs.registers_to_bytes(registers)
    ascii_ = "".join(chr(b) if 32 <= b < 127 else "." for b in text)
    return {"columns": columns, "rows": rows, "ascii": ascii_, "hex": [f"{r:04X}" for r in registers]}


class DirectModbus:
    """A Modbus connection opened by the CLI itself (agent stopped)."""

    def __init__(self, transport: str, **kwargs: Any) -> None:
        from drivers.modbus.adapter import ModbusClient

        self.client = ModbusClient(transport, **kwargs)

    async def __aenter__(self) -> DirectModbus:
        import termios

        try:
            await self.client.connect()
        except termios.error as exc:
            # pyserial applies the line settings on open; a port (or a pty)
            # that cannot do them raises termios.error, not OSError
            self.client.close()
            raise ModbusConnectionLost(f"the port refused these line settings ({exc.args[-1]})") from None
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.client.close()
        await asyncio.sleep(0)

    async def request(self, op: str, unit: int, address: int, arg: Any, timeout: float) -> Any:
        self.client.set_timeout(timeout)
        if op in ("read_registers", "read_bits"):
            table, count = arg
            return await getattr(self.client, op)(table, unit, address, count)
        raise ValueError(f"diag does not write: {op}")
