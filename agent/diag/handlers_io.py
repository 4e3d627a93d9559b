"""Diag handlers that do I/O through the agent: Modbus via its buses, cameras via vision, the outbox file."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

from agent.config.plain import as_dict
from agent.diag import modbus_tools as mt
from agent.diag.protocol import BAD_ARGS, FAILED, NOT_FOUND, UNAVAILABLE, DiagError, arg_float, arg_int, arg_str


def _modbus_bus(agent: Any, args: dict[str, Any]) -> Any:
    name = arg_str(args, "bus")
    bus = agent.buses.get(name)
    if bus is None:
        known = ", ".join(sorted(agent.buses)) or "none configured"
        raise DiagError(NOT_FOUND, f"no bus {name!r} in the running agent", f"known buses: {known}")
    if not hasattr(bus, "request"):
        raise DiagError(BAD_ARGS, f"bus {name!r} is a {bus.config.type} bus, not Modbus", "use `diag serial sniff` for serial sensors")
    return bus


def _table(args: dict[str, Any]) -> str:
    table = args.get("table", "holding")
    if table not in mt.TABLES:
        raise DiagError(BAD_ARGS, f"unknown table {table!r}", "use one of " + ", ".join(mt.TABLES))
    return table


async def h_modbus_read(agent: Any, args: dict[str, Any], emit: Any) -> Any:
    from drivers.modbus.errors import ModbusError

    bus = _modbus_bus(agent, args)
    table = _table(args)
    unit = arg_int(args, "unit", None, 0, 255)
    address = arg_int(args, "address", None, 0, 65535)
    count = arg_int(args, "count", 2, 1, 125 if table in ("holding", "input") else 2000)
    timeout = arg_float(args, "timeout", 1.0, 0.05, 30.0)
    started = time.monotonic()
    try:
        values = await mt.read_range(bus.request, unit, table, address, count, timeout)
    except ModbusError as exc:
        from agent.diag.health import hint_for

        raise DiagError(FAILED, f"unit {unit} on {bus.config.name}: {exc}", hint_for(f"{exc.status} {exc}")) from None
    ms = round((time.monotonic() - started) * 1000, 1)
    return {"bus": bus.config.name, "unit": unit, "table": table, "address": address, "values": values, "via": "agent", "ms": ms}


async def h_modbus_scan(agent: Any, args: dict[str, Any], emit: Any) -> Any:
    from drivers.modbus.errors import ModbusConnectionLost

    bus = _modbus_bus(agent, args)
    first = arg_int(args, "first", 1, 0, 255)
    last = arg_int(args, "last", 247, first, 255)
    timeout = arg_float(args, "timeout", 0.3, 0.05, 10.0)
    address = arg_int(args, "address", 0, 0, 65535)
    table = _table(args)
    try:
        result = await mt.scan_units(bus.request, list(range(first, last + 1)), table=table, address=address, timeout=timeout, on_result=emit)
    except ModbusConnectionLost as exc:
        raise DiagError(FAILED, f"bus {bus.config.name} is not connected: {exc}", "check the cable/adapter or host and port in [[buses]]") from None
    return {"bus": bus.config.name, "via": "agent", **_bus_settings(bus), **result}


def _bus_settings(bus: Any) -> dict[str, Any]:
    c = bus.config
    return {k: getattr(c, k) for k in ("type", "port", "host", "baudrate", "parity") if getattr(c, k, None) is not None}


def _vision(agent: Any, camera: str) -> Any:
    if agent.vision is None:
        raise DiagError(UNAVAILABLE, "vision is not running in this agent", "enable [vision] and add [[cameras]], then restart the agent")
    names = [c.name for c in agent.config.cameras]
    if camera not in names:
        raise DiagError(NOT_FOUND, f"no camera {camera!r}", "known cameras: " + (", ".join(names) or "none"))
    return agent.vision


async def h_camera_snapshot(agent: Any, args: dict[str, Any], emit: Any) -> Any:
    camera = arg_str(args, "camera")
    vision = _vision(agent, camera)
    try:
        jpeg = await asyncio.wait_for(vision.snapshot(camera, blur_people=bool(args.get("blur_people", True))), 20.0)
    except TimeoutError:
        raise DiagError(FAILED, f"camera {camera!r} gave no frame within 20 s", "check the camera (`diag status` shows its fps and last error)") from None
    except (LookupError, RuntimeError, ValueError, OSError) as exc:
        raise DiagError(FAILED, f"snapshot of {camera!r} failed: {exc}", "check the camera (`diag status`)") from None
    cfg = next(c for c in agent.config.cameras if c.name == camera)
    return {"camera": camera, "jpeg_b64": base64.b64encode(jpeg).decode(), "geometry": camera_geometry(cfg), "status": (vision.status() or {}).get(camera, {})}


def camera_geometry(cfg: Any) -> dict[str, Any]:
    """Lines, zones and bin regions of a camera as plain lists (normalised 0..1)."""

    def dump(items: Any) -> list[dict[str, Any]]:
        return json.loads(json.dumps([as_dict(i) for i in (items or [])]))

    return {"lines": dump(getattr(cfg, "lines", None)), "zones": dump(getattr(cfg, "zones", None)), "bins": dump(getattr(cfg, "bins", None))}


async def h_camera_reference(agent: Any, args: dict[str, Any], emit: Any) -> Any:
    camera = arg_str(args, "camera")
    bin_name = arg_str(args, "bin")
    which = args.get("which")
    if which not in ("empty", "full"):
        raise DiagError(BAD_ARGS, "`which` must be `empty` or `full`")
    vision = _vision(agent, camera)
    try:
        saved = await asyncio.wait_for(vision.record_reference(camera, bin_name, which), 20.0)
    except TimeoutError:
        raise DiagError(FAILED, f"camera {camera!r} gave no frame within 20 s", "check the camera (`diag status`)") from None
    except (LookupError, RuntimeError, ValueError, OSError) as exc:
        raise DiagError(
            FAILED, f"recording the {which} reference of bin {bin_name!r} failed: {exc}", "check the bin name in [[cameras.bins]] and that the camera sees it"
        ) from None
    return {"camera": camera, "bin": bin_name, "which": which, "saved": saved}


async def h_buffer(agent: Any, args: dict[str, Any], emit: Any) -> Any:
    from agent.diag import buffer

    path = buffer.outbox_path(agent.config, agent.data_dir)
    limit = arg_int(args, "limit", 20, 0, 100000)
    export = bool(args.get("export"))
    device = args.get("device") or None
    summary = await asyncio.to_thread(buffer.summarise, path, device)
    stats = agent.outbox.stats() if agent.outbox is not None else {}
    if not export:
        summary["rows"] = await asyncio.to_thread(buffer.rows, path, 0, limit, device)
        return {"path": path, "stats": stats, **summary}
    sent, after = 0, 0
    while not limit or sent < limit:
        chunk = await asyncio.to_thread(buffer.rows, path, after, 500 if not limit else min(500, limit - sent), device)
        if not chunk:
            break
        for row in chunk:
            await emit(row)
        sent += len(chunk)
        after = chunk[-1]["seq"]
    return {"path": path, "stats": stats, "exported": sent, **summary}
