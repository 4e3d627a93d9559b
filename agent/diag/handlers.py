"""What the diag socket answers. Each handler: `async (agent, args, emit) -> result`.

Handlers only read the agent's state or go through its own buses, so a
technician's request never fights a driver for a port; nothing here blocks
the event loop.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from agent.diag import health
from agent.diag.facts import system_facts, uplink_certificates
from agent.diag.protocol import NOT_FOUND, PROTOCOL_VERSION, DiagError, arg_float, arg_int

Emit = Callable[[Any], Awaitable[None]]
Handler = Callable[[Any, dict[str, Any], Emit], Awaitable[Any]]


def full_status(agent: Any) -> dict[str, Any]:
    st = agent.status()
    st["pid"] = os.getpid()
    st["now"] = time.time()
    st["system"] = system_facts(agent.data_dir)
    st["certificates"] = uplink_certificates(agent.config.uplink)
    if agent.diag is not None:
        st["diagnostics"] = agent.diag.status()
    st["findings"] = health.evaluate(st)
    st["health"] = max((f["level"] for f in st["findings"]), key=health.LEVELS.__getitem__, default=health.OK)
    return st


async def h_hello(agent: Any, args: dict[str, Any], emit: Emit) -> Any:
    from agent import __version__

    return {
        "protocol": PROTOCOL_VERSION,
        "agent": __version__,
        "pid": os.getpid(),
        "gateway": agent.config.gateway.id,
        "config_path": agent.config_path,
        "data_dir": agent.data_dir,
    }


async def h_status(agent: Any, args: dict[str, Any], emit: Emit) -> Any:
    return full_status(agent)


async def h_watch(agent: Any, args: dict[str, Any], emit: Emit) -> Any:
    interval = arg_float(args, "interval", 1.0, 0.2, 60.0)
    count = arg_int(args, "count", 0, 0, 1_000_000)  # 0: until the client leaves
    sent = 0
    while not count or sent < count:
        await emit(full_status(agent))
        sent += 1
        if not count or sent < count:
            await asyncio.sleep(interval)
    return {"sent": sent}


async def h_devices(agent: Any, args: dict[str, Any], emit: Emit) -> Any:
    return {"devices": {name: d.status() for name, d in agent.drivers.items()}, "buses": {name: b.status() for name, b in agent.buses.items()}}


def _match(r: Any, device: str | None, metric: str | None) -> bool:
    return (device is None or r.device == device) and (metric is None or r.metric == metric)


async def h_readings(agent: Any, args: dict[str, Any], emit: Emit) -> Any:
    device = args.get("device") or None
    metric = args.get("metric") or None
    if device is not None and device not in agent.drivers and device not in {c.name for c in agent.config.cameras}:
        raise DiagError(NOT_FOUND, f"no device {device!r}", "known: " + ", ".join(sorted(agent.drivers)))
    last = arg_int(args, "last", 50, 0, 10000)
    recent = [r for r in list(agent.tap.recent) if _match(r, device, metric)][-last:] if last else []
    if not args.get("follow"):
        return {"readings": [r.as_dict() for r in recent]}
    sub = agent.tap.subscribe(maxsize=1000)
    sent = 0
    try:
        for r in recent:
            await emit(r.as_dict())
        while True:
            r = await sub.queue.get()
            if _match(r, device, metric):
                await emit(r.as_dict())
                sent += 1
    finally:
        agent.tap.unsubscribe(sub)


def _recorder_of(obj: Any) -> Any:
    rec = getattr(obj, "recorder", None)
    return rec if rec is not None and hasattr(rec, "snapshot") else None


def _normalise(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One shape for both recorders: Modbus buses keep {wall, dir, data}; serial
    readers keep {wall, hex} chunks read from the port, notes as "-- text"."""
    out = []
    for e in entries:
        if "dir" in e:
            out.append(e)
            continue
        raw = bytes.fromhex(e.get("hex", "").replace(" ", ""))
        if raw.startswith(b"-- "):
            out.append({"wall": e.get("wall"), "dir": "--", "data": raw[3:].decode(errors="replace")})
        else:
            out.append({"wall": e.get("wall"), "dir": "rx", "data": raw.hex()})
    return out


def frames_snapshot(agent: Any) -> dict[str, Any]:
    """Recent raw frames of every bus and driver that keeps a flight recorder."""
    out: dict[str, Any] = {}
    for kind, items in (("bus", agent.buses), ("device", agent.drivers)):
        for name, obj in items.items():
            fr = getattr(obj, "flight_recorder", None)
            if callable(fr):
                out[f"{kind}:{name}"] = _normalise(fr())
                continue
            rec = _recorder_of(obj)
            if rec is not None:
                out[f"{kind}:{name}"] = _normalise(rec.snapshot())
    return out


async def h_frames(agent: Any, args: dict[str, Any], emit: Emit) -> Any:
    frames = frames_snapshot(agent)
    want = args.get("name")
    if want:
        frames = {k: v for k, v in frames.items() if k.split(":", 1)[1] == want}
        if not frames:
            raise DiagError(NOT_FOUND, f"no flight recorder for {want!r}", "buses and serial devices keep one; see `diag devices`")
    return {"frames": frames}


async def h_bundle(agent: Any, args: dict[str, Any], emit: Emit) -> Any:
    from agent.diag.redact import redacted_config

    config_text, secret_files = ("", [])
    if agent.config_path:
        config_text, secret_files = await asyncio.to_thread(redacted_config, agent.config_path)
    return {
        "status": full_status(agent),
        "describe": agent.describe(),
        "frames": frames_snapshot(agent),
        "config_path": agent.config_path,
        "config": config_text,
        "redacted_files": secret_files,
    }


def _handlers() -> dict[str, Handler]:
    from agent.diag import handlers_io as io

    return {
        "hello": h_hello,
        "status": h_status,
        "watch": h_watch,
        "devices": h_devices,
        "readings": h_readings,
        "frames": h_frames,
        "bundle": h_bundle,
        "modbus.read": io.h_modbus_read,
        "modbus.scan": io.h_modbus_scan,
        "camera.snapshot": io.h_camera_snapshot,
        "camera.reference": io.h_camera_reference,
        "buffer": io.h_buffer,
    }


HANDLERS: dict[str, Handler] = _handlers()
