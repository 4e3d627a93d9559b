"""`diag serial sniff`: a hex dump of a serial line with recognised frames marked.

Agent stopped: the port is opened here and listened to. Agent holding the
port: we do not fight it for bytes (a second reader steals them from the
driver); the agent's flight recorder of that bus is shown instead.
"""

from __future__ import annotations

import os
import time
from typing import Any

from agent.diag import sniff
from agent.diag.context import EXIT_DEGRADED, EXIT_OK, CliError, Ctx
from agent.diag.ports import describe_holders, split_holders
from agent.diag.render import table


def _port_and_settings(ctx: Ctx) -> tuple[str, int, str, str]:
    """(port, baud, parity, bus-or-device name) from the arguments and the config."""
    a = ctx.args
    port, baud, parity, name = a.port, a.baud, a.parity, ""
    cfg = ctx.config
    if (a.device or a.bus) and cfg is None:
        ctx.need_config()
    if a.device:
        dev = next((d for d in cfg.devices if d.name == a.device), None)
        if dev is None:
            raise CliError(f"no device {a.device!r} in {ctx.config_path}", "known: " + ", ".join(d.name for d in cfg.devices))
        name = a.device
        if getattr(dev, "port", None):
            port = port or dev.port
            baud = baud or getattr(dev, "baudrate", None)
            parity = parity or getattr(dev, "parity", None)
        elif getattr(dev, "bus", None):
            a.bus = dev.bus
    if a.bus:
        bus = next((b for b in cfg.buses if b.name == a.bus), None)
        if bus is None:
            raise CliError(f"no bus {a.bus!r} in {ctx.config_path}", "known: " + ", ".join(b.name for b in cfg.buses))
        if not isinstance(getattr(bus, "port", None), str):
            raise CliError(
                f"bus {a.bus!r} is a network bus ({bus.type}); there is no serial line here to sniff",
                "use `diag modbus scan`/`read`, or sniff on the converter's serial side",
            )
        name = name or a.bus
        port = port or bus.port
        baud = baud or getattr(bus, "baudrate", None)
        parity = parity or getattr(bus, "parity", None)
    if not port:
        raise CliError("say which line: --port /dev/ttyUSB0, --device NAME or --bus NAME", "")
    # the serial bus says "none"/"even"/..., Modbus buses and --parity say N/E/O
    return port, int(baud or 9600), str(parity or "N")[0].upper(), name


def run_sniff(ctx: Ctx) -> int:
    a = ctx.args
    port, baud, parity, name = _port_and_settings(ctx)
    codecs = ["sds011", "pms5003", "nmea", "maxbotix", "modbus"] if a.codec == "auto" else [a.codec]
    client = ctx.agent()
    agent_pid = ctx.call("hello").get("pid") if client is not None else None
    held, others = split_holders(port, agent_pid)
    if held:
        return _from_agent(ctx, port, held, name, codecs)
    if others and not ctx.json:
        ctx.note(f"{describe_holders(port, others)}; if it reads the line too, each reader gets only part of the bytes")
    if not os.path.exists(port):
        raise CliError(f"{port} does not exist", "check the adapter is plugged in (ls /dev/serial/by-id/, dmesg | tail)")
    note = ctx.offline_reason or "the agent does not hold this port"
    if not ctx.json:
        ctx.note(f"{note}: listening on {port} at {baud} 8{parity}1 for {a.seconds:g} s")
    data = _capture(port, baud, parity, a.seconds)
    return _report(ctx, data, codecs, f"{port} {baud} 8{parity}1")


def _capture(port: str, baud: int, parity: str, seconds: float) -> bytes:
    import serial

    try:
        ser = serial.Serial(port, baudrate=baud, parity=parity, timeout=0.1)
    except (serial.SerialException, OSError, ValueError) as exc:
        hint = (
            "add yourself to the dialout group (sudo usermod -aG dialout $USER) or use sudo"
            if "ermission" in str(exc)
            else "check the port path and the adapter"
        )
        raise CliError(f"cannot open {port}: {exc}", hint) from None
    buf = bytearray()
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and len(buf) < 1 << 20:
            buf += ser.read(4096)
    finally:
        ser.close()
    return bytes(buf)


def _from_agent(ctx: Ctx, port: str, held: list[dict[str, Any]], name: str, codecs: list[str]) -> int:
    msg = describe_holders(port, held)
    if ctx.agent() is None:
        raise CliError(msg + " but does not answer on its diag socket", "stop it (sudo systemctl stop edge-agent) to sniff the port directly")
    ctx.note(f"{msg}: not opening it a second time; showing the agent's recent raw frames instead")
    frames = ctx.call("frames").get("frames", {})
    key = _recorder_key(ctx, frames, port, name)
    if key is None:
        raise CliError("the agent keeps no raw frames for this line", "stop the agent (sudo systemctl stop edge-agent) to sniff the port directly")
    entries = frames[key]
    if ctx.json:
        ctx.emit_json({"port": port, "held_by": held, "source": key, "frames": entries})
        return EXIT_OK
    if all(e["dir"] in ("rx", "--") for e in entries):
        # a streaming sensor's recorder holds the chunks read from the port, in order
        notes = [e["data"] for e in entries if e["dir"] == "--"]
        data = b"".join(bytes.fromhex(e["data"]) for e in entries if e["dir"] == "rx")
        print(f"last {len(entries)} chunks the agent read from {port} ({key}){'; notes: ' + '; '.join(notes) if notes else ''}:")
        return _report(ctx, data, codecs, f"{port} (agent's flight recorder)")
    rows = []
    for e in entries:
        data = bytes.fromhex(e["data"]) if e["dir"] in ("tx", "rx") else b""
        found = sniff.find_frames(data, codecs) if data else []
        what = ", ".join(f"{f['codec']} {sniff.describe(f)}" for f in found) if data else e["data"]
        rows.append([time.strftime("%H:%M:%S", time.localtime(e["wall"])), e["dir"], e["data"][:64] if data else "", what])
    print(f"last {len(entries)} entries of the agent's flight recorder for {key}:")
    print(table(["time", "dir", "hex", "recognised"], rows, ctx.style, max_col=80))
    return EXIT_OK


def _recorder_key(ctx: Ctx, frames: dict[str, Any], port: str, name: str) -> str | None:
    """The recorder of the named device or bus, else of a device on the bus with this port."""
    if name and f"device:{name}" in frames:
        return f"device:{name}"
    if name and f"bus:{name}" in frames:
        return f"bus:{name}"
    cfg = ctx.config
    if cfg is not None:
        buses = {b.name for b in cfg.buses if isinstance(getattr(b, "port", None), str) and os.path.realpath(b.port) == os.path.realpath(port)}
        for b in buses:
            if f"bus:{b}" in frames:
                return f"bus:{b}"
        for d in cfg.devices:
            if getattr(d, "bus", None) in buses and f"device:{d.name}" in frames:
                return f"device:{d.name}"
    return None


def _report(ctx: Ctx, data: bytes, codecs: list[str], where: str) -> int:
    frames = sniff.find_frames(data, codecs)
    summ = sniff.summary(data, frames)
    if ctx.json:
        ctx.emit_json({"line": where, "summary": summ, "hex": data.hex(), "frames": [{**f, "data": sniff.describe(f)} for f in frames]})
        return EXIT_OK if summ["frames"] else EXIT_DEGRADED
    if not data:
        print(f"{where}: no bytes at all")
        ctx.note(
            "nothing on the line: check the sensor's power and TX wire (sensor TX to adapter RX), and that it sends by itself (SDS011 in query mode waits to be asked)"
        )
        return EXIT_DEGRADED
    print(sniff.hexdump(data[:4096], frames, ctx.style))
    if len(data) > 4096:
        print(ctx.style(f"... {len(data) - 4096} more bytes (use --json for all)", "dim"))
    print()
    frame_txt = ", ".join(f"{n} {c}" for c, n in summ["frames"].items()) or "none"
    err_txt = ", ".join(f"{n} {k}" for k, n in summ["errors"].items()) or "none"
    print(f"{summ['bytes']} bytes: frames {frame_txt}; errors {err_txt}; {summ['unrecognised_bytes']} bytes not in any frame")
    for f in [f for f in frames if f["kind"] == "frame"][:5]:
        print(f"  {f['codec']} @{f['start']}: {sniff.describe(f)}")
    if not summ["frames"]:
        ctx.note(
            "bytes arrive but no known frame: wrong baud rate (try 9600 for SDS011/PMS5003/NMEA, 4800 for some GPS), wrong sensor type, or noise from a loose wire"
        )
        return EXIT_DEGRADED
    if summ["unrecognised_bytes"] > summ["bytes"] // 4:
        ctx.note("a quarter or more of the bytes are garbage: check the wiring, ground and cable length")
        return EXIT_DEGRADED
    return EXIT_OK
