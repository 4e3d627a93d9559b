"""`diag modbus scan` and `diag modbus read`, through the agent or directly.

Agent running: requests go through its bus (it owns the port; polling goes
on between our requests). Agent stopped: the port or host is opened here.
Trying several baud rates or parities needs the port to ourselves, so it is
only offered with the agent stopped.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from agent.diag import modbus_tools as mt
from agent.diag.context import EXIT_BROKEN, EXIT_DEGRADED, EXIT_OK, CliError, Ctx
from agent.diag.health import hint_for
from agent.diag.ports import describe_holders, split_holders
from agent.diag.render import table


def _bus_config(ctx: Ctx, name: str) -> Any:
    cfg = ctx.need_config()
    for b in cfg.buses:
        if b.name == name:
            return b
    raise CliError(f"no bus {name!r} in {ctx.config_path}", "known buses: " + (", ".join(b.name for b in cfg.buses) or "none"))


def _direct_settings(ctx: Ctx) -> list[dict[str, Any]]:
    """Connection settings to try, from --port/--host or the --bus entry of the config."""
    a = ctx.args
    base: dict[str, Any] = {}
    if a.bus and not (a.port or a.host):
        b = _bus_config(ctx, a.bus)
        transport = {"modbus_tcp": "tcp", "modbus_rtu": "rtu", "modbus_rtu_over_tcp": "rtu_over_tcp"}.get(b.type)
        if transport is None:
            raise CliError(f"bus {a.bus!r} is of type {b.type}, not Modbus", "use `diag serial sniff` for serial sensors")
        base = {"transport": transport}
        if transport == "rtu":
            base.update(serial_port=b.port, baudrate=b.baudrate, parity=b.parity, bytesize=b.bytesize, stopbits=b.stopbits)
        else:
            base.update(host=b.host, port=b.port)
    elif a.port:
        base = {"transport": "rtu", "serial_port": a.port, "baudrate": 9600, "parity": "N"}
    elif a.host:
        base = {"transport": "rtu_over_tcp" if a.rtu_over_tcp else "tcp", "host": a.host, "port": a.tcp_port}
    else:
        raise CliError("say where to talk: --bus NAME (from the config), --port /dev/ttyUSB0 or --host ADDRESS", "")
    if base["transport"] != "rtu":
        if a.baud or a.parity:
            ctx.note("--baud/--parity only apply to a serial port; ignored for a TCP connection")
        return [base]
    bauds = [int(x) for x in a.baud.split(",") if x.strip()] if a.baud else [base["baudrate"]]
    parities = [x.strip().upper() for x in a.parity.split(",") if x.strip()] if a.parity else [base["parity"]]
    for p in parities:
        if p not in ("N", "E", "O"):
            raise CliError(f"parity {p!r} is not one of N, E, O")
    return [{**base, "baudrate": b, "parity": p} for b, p in itertools.product(bauds, parities)]


def _label(s: dict[str, Any]) -> str:
    if s["transport"] == "rtu":
        return f"{s['serial_port']} {s['baudrate']} 8{s['parity']}{s.get('stopbits', 1)}"
    return f"{s['transport']} {s['host']}:{s['port']}"


def _use_agent(ctx: Ctx) -> bool:
    """True: go through the agent's bus. Raises when the agent holds what we would open."""
    a = ctx.args
    client = ctx.agent()
    if client is None:
        port = a.port or (getattr(_bus_config(ctx, a.bus), "port", None) if a.bus and not a.host else None)
        if isinstance(port, str) and port:
            held, _others = split_holders(port)
            if held:
                # an agent without a diag socket (disabled, or hung) still owns the line
                raise CliError(
                    describe_holders(port, held) + " but does not answer on its diag socket",
                    "stop it (sudo systemctl stop edge-agent) and retry; two masters on one RS-485 line garble each other",
                )
        where = a.bus or a.port or a.host
        ctx.note(f"{ctx.offline_reason}: opening {where} directly")
        return False
    if a.bus and not (a.port or a.host):
        if (a.baud and "," in a.baud) or (a.parity and "," in a.parity) or a.baud or a.parity:
            raise CliError(
                f"the agent holds bus {a.bus!r}; trying other baud rates or parities needs the port to ourselves",
                "stop the agent (sudo systemctl stop edge-agent), run the scan, then start it again; or scan at the configured settings without --baud/--parity",
            )
        return True
    if a.port:
        held, _others = split_holders(a.port, client.call("hello").get("pid"))
        if held:
            bus = _agent_bus_for_port(ctx, a.port)
            if bus:
                ctx.note(f"{describe_holders(a.port, held)}; going through its bus {bus!r}")
                a.bus = bus
                return True
            raise CliError(describe_holders(a.port, held), "stop that process first (sudo systemctl stop edge-agent), or use --bus to go through the agent")
    return False


def _agent_bus_for_port(ctx: Ctx, port: str) -> str | None:
    import os

    if ctx.config is None:
        return None
    for b in ctx.config.buses:
        if getattr(b, "port", None) and isinstance(b.port, str) and os.path.realpath(b.port) == os.path.realpath(port):
            return b.name
    return None


def run_scan(ctx: Ctx) -> int:
    a = ctx.args
    timeout = a.timeout or 0.3
    if not 0 <= a.first <= a.last <= 255:
        raise CliError("unit ids go from 0 to 255 with --first <= --last")
    if _use_agent(ctx):
        assert ctx._client is not None
        if not ctx.json:
            ctx.note(f"scanning units {a.first}..{a.last} on bus {a.bus} through the agent ({timeout:g} s per unit)")
        from agent.diag.client import RemoteError

        try:
            for ev in ctx._client.stream("modbus.scan", wait=0, bus=a.bus, first=a.first, last=a.last, timeout=timeout, address=a.address, table=a.table):
                _progress(ctx, ev)
        except RemoteError as err:
            raise CliError(err.message, err.hint) from None
        res = ctx._client.last_result
        results = [{"settings": f"bus {a.bus} ({res.get('type', '')}) via the agent", **res}]
    else:
        results = asyncio.run(_scan_direct(ctx, _direct_settings(ctx), timeout))
    return _report_scan(ctx, results)


def _progress(ctx: Ctx, ev: dict[str, Any]) -> None:
    if ctx.json:
        return
    if ev.get("answered"):
        print(
            f"  unit {ev['unit']:>3}: {ctx.style('answers', 'ok')} ({ev['result']}{', ' + ev['detail'] if ev.get('detail') else ''}, {ev['ms']} ms)", flush=True
        )
    elif ev.get("result") == "bad_frame":
        print(f"  unit {ev['unit']:>3}: {ctx.style('garbled answer', 'degraded')}: {ev.get('detail')}", flush=True)


async def _scan_direct(ctx: Ctx, settings: list[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
    from drivers.modbus.errors import ModbusConnectionLost

    a = ctx.args
    out = []
    for s in settings:
        kw = {k: v for k, v in s.items() if k != "transport"}
        if not ctx.json:
            ctx.note(f"scanning units {a.first}..{a.last} at {_label(s)} ({timeout:g} s per unit)")

        async def progress(ev: dict[str, Any]) -> None:
            _progress(ctx, ev)

        try:
            async with mt.DirectModbus(s["transport"], timeout=timeout, **kw) as m:
                res = await mt.scan_units(m.request, list(range(a.first, a.last + 1)), table=a.table, address=a.address, timeout=timeout, on_result=progress)
        except ModbusConnectionLost as exc:
            res = {"found": [], "noise": [], "tried": 0, "error": f"cannot open {_label(s)}: {exc}"}
        out.append({"settings": _label(s), **{k: v for k, v in s.items()}, **res})
    return out


def _report_scan(ctx: Ctx, results: list[dict[str, Any]]) -> int:
    found_any = any(r["found"] for r in results)
    if ctx.json:
        ctx.emit_json({"results": results, "found": found_any})
        return EXIT_OK if found_any else EXIT_DEGRADED
    rows = []
    for r in results:
        if r.get("error"):
            rows.append([r["settings"], ("cannot open", "broken"), r["error"]])
            continue
        units = ", ".join(str(f["unit"]) + ("(exc)" if f["result"] == "exception" else "") for f in r["found"]) or "-"
        noise = f"garbled answers from {len(r['noise'])} probe(s)" if r["noise"] else ""
        rows.append([r["settings"], (units, "ok" if r["found"] else "dim"), noise])
    print(table(["settings", "units answering", "notes"], rows, ctx.style, max_col=90))
    if not found_any:
        noisy = any(r["noise"] for r in results)
        hint = (
            "bytes came back but no valid answer: wrong baud rate or parity, or A/B swapped; try --baud 2400,4800,9600,19200,38400 --parity N,E"
            if noisy
            else "nothing answered: check power and A/B wiring, termination, the port, and the unit id range; try other --baud/--parity (agent stopped)"
        )
        ctx.note("no unit answered. " + hint)
        return EXIT_DEGRADED
    return EXIT_OK


def run_read(ctx: Ctx) -> int:
    a = ctx.args
    timeout = a.timeout or 1.0
    if _use_agent(ctx):
        res = ctx.call("modbus.read", wait=timeout + 15, bus=a.bus, unit=a.unit, address=a.address, count=a.count, table=a.table, timeout=timeout)
        values, via, ms = res["values"], f"bus {a.bus} via the agent", res["ms"]
    else:
        settings = _direct_settings(ctx)
        if len(settings) > 1:
            raise CliError("`modbus read` takes one --baud and one --parity", "use `modbus scan` to find the right settings first")
        t0 = time.monotonic()
        values, via = asyncio.run(_read_direct(ctx, settings[0], timeout)), _label(settings[0])
        ms = round((time.monotonic() - t0) * 1000, 1)
    decoded = mt.decode_all(values) if a.table in ("holding", "input") else None
    if ctx.json:
        ctx.emit_json({"unit": a.unit, "table": a.table, "address": a.address, "values": values, "via": via, "ms": ms, "decoded": decoded})
        return EXIT_OK
    print(f"unit {a.unit} {a.table} {a.address}..{a.address + len(values) - 1} ({via}), answered in {ms:.0f} ms")
    slow = _configured_timeout(ctx, a.unit)
    if slow is not None and ms / 1000 > slow[1]:
        ctx.note(f"device {slow[0]} answers in {ms:.0f} ms but its failure.timeout is {slow[1]:g} s: raise the timeout in its [[devices]] entry")
    if decoded is None:
        print(table(["address", "value"], [[a.address + i, int(v)] for i, v in enumerate(values)], ctx.style))
        return EXIT_OK
    print(
        table(["address", "hex", "uint16", "int16"], [[a.address + i, f"{v:04X}", v, v - 65536 if v > 32767 else v] for i, v in enumerate(values)], ctx.style)
    )
    print(f"as text: {decoded['ascii']!r}")
    cols = [c for c in decoded["columns"] if c not in ("uint16", "int16")]
    rows = [[a.address + r["offset"], r["order"], *[r[c] for c in cols]] for r in decoded["rows"] if any(r[c] != "" for c in cols)]
    if rows:
        print()
        print(ctx.style("multi-register values (ABCD = big-endian; CDAB = word swap; BADC = byte swap; DCBA = both)", "dim"))
        print(table(["from", "order", *cols], rows, ctx.style))
    return EXIT_OK


def _configured_timeout(ctx: Ctx, unit: int) -> tuple[str, float] | None:
    """(device name, failure.timeout) of the configured device at this bus and unit, if any."""
    if ctx.config is None or not ctx.args.bus:
        return None
    for d in ctx.config.devices:
        if getattr(d, "bus", None) == ctx.args.bus and getattr(d, "unit_id", None) == unit:
            return d.name, d.failure.timeout
    return None


async def _read_direct(ctx: Ctx, s: dict[str, Any], timeout: float) -> list[Any]:
    from drivers.modbus.errors import ModbusError

    a = ctx.args
    kw = {k: v for k, v in s.items() if k != "transport"}
    try:
        async with mt.DirectModbus(s["transport"], timeout=timeout, **kw) as m:
            return await mt.read_range(m.request, a.unit, a.table, a.address, a.count, timeout)
    except ModbusError as exc:
        raise CliError(f"unit {a.unit} at {_label(s)}: {exc}", hint_for(f"{exc.status} {exc}"), EXIT_BROKEN) from None
