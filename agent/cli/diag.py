"""`edge-agent diag ...`: the field technician's commands.

With the agent running they ask it over its Unix socket; with it stopped they
open the hardware themselves and say so. Every command takes --json; human
output uses colour unless NO_COLOR is set or stdout is not a terminal.
`diag status` exits 0 healthy, 1 degraded, 2 broken. See docs/field-guide.md.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any

from agent.cli.common import add_config_arg


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    add_config_arg(p)
    p.add_argument("--socket", metavar="PATH", help="the agent's diag socket (default: from the config, diag.sock in the data_dir)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--no-color", action="store_true", help="no colours (also: NO_COLOR=1)")
    return p


def _cmd(sub: Any, name: str, target: str, help_: str, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_, description=help_, parents=[common])
    p.set_defaults(handler=handle, diag_target=target)
    return p


def _modbus_target(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("where (a bus of the config, or a port/host given here)")
    g.add_argument("--bus", help="a [[buses]] name of the config")
    g.add_argument("--port", help="serial device (RTU), e.g. /dev/ttyUSB0")
    g.add_argument("--host", help="Modbus TCP host (or RS-485 converter with --rtu-over-tcp)")
    g.add_argument("--tcp-port", type=int, default=502, help="TCP port (default 502)")
    g.add_argument("--rtu-over-tcp", action="store_true", help="RTU frames over TCP (serial device server)")
    g.add_argument("--baud", default="", help="baud rate(s) to try, comma separated, e.g. 9600,19200 (serial; default: the bus's)")
    g.add_argument("--parity", default="", help="parity(ies) to try: N,E,O (serial; default: the bus's)")
    p.add_argument("--timeout", type=float, default=None, help="seconds to wait for each answer")
    p.add_argument("--table", choices=["holding", "input", "coil", "discrete"], default="holding")


def register(sub: Any) -> None:
    common = _common()
    diag = sub.add_parser("diag", help="diagnostics for technicians: status, devices, modbus scan, mqtt check, bundle...")
    ds = diag.add_subparsers(dest="diag_command", metavar="COMMAND", required=True)

    _cmd(ds, "status", "cmd_status:run_status", "one screen, worst first; exit 0 healthy, 1 degraded, 2 broken", common)
    _cmd(ds, "devices", "cmd_status:run_devices", "each device: online, latest values with units and status", common)
    p = _cmd(ds, "readings", "cmd_status:run_readings", "recent readings; --follow for live ones", common)
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new readings until Ctrl-C")
    p.add_argument("--device", help="only this device")
    p.add_argument("--metric", help="only this metric")
    p.add_argument("--last", type=int, default=20, help="how many recent readings to show first (default 20)")
    p = _cmd(ds, "watch", "cmd_watch:run_watch", "live full-screen dashboard (q or Ctrl-C quits)", common)
    p.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes (default 1)")
    p.add_argument("--count", type=int, default=0, help="stop after this many refreshes (0: until q)")

    modbus = ds.add_parser("modbus", help="Modbus bus scan and register reads")
    ms = modbus.add_subparsers(dest="modbus_command", metavar="ACTION", required=True)
    p = _cmd(ms, "scan", "cmd_modbus:run_scan", "find which unit ids answer (and at which baud rate and parity, if given several)", common)
    _modbus_target(p)
    p.add_argument("--first", type=int, default=1, help="first unit id (default 1)")
    p.add_argument("--last", type=int, default=247, help="last unit id (default 247)")
    p.add_argument("--address", type=int, default=0, help="register probed in each unit (default 0)")
    p = _cmd(ms, "read", "cmd_modbus:run_read", "read registers and show them decoded in every type and byte/word order", common)
    _modbus_target(p)
    p.add_argument("--unit", type=int, required=True, help="unit id (slave address)")
    p.add_argument("--address", type=int, required=True, help="first register (0-based, as on the wire)")
    p.add_argument("--count", type=int, default=4, help="registers to read (default 4)")

    serial = ds.add_parser("serial", help="serial line tools")
    ss = serial.add_subparsers(dest="serial_command", metavar="ACTION", required=True)
    p = _cmd(ss, "sniff", "cmd_serial:run_sniff", "hex dump of a serial line with the frames the known parsers recognise marked", common)
    p.add_argument("--port", help="serial device (default: the port of --device or --bus in the config)")
    p.add_argument("--device", help="a [[devices]] name whose port to sniff")
    p.add_argument("--bus", help="a [[buses]] name whose port to sniff")
    p.add_argument("--baud", type=int, default=None, help="baud rate (default: the device's, else 9600)")
    p.add_argument("--parity", choices=["N", "E", "O"], default=None)
    p.add_argument("--seconds", type=float, default=5.0, help="how long to listen (default 5)")
    p.add_argument(
        "--codec", choices=["auto", "sds011", "pms5003", "nmea", "maxbotix", "modbus"], default="auto", help="parser to mark frames with (default: all)"
    )

    camera = ds.add_parser("camera", help="camera snapshot and bin-fill references")
    cs = camera.add_subparsers(dest="camera_command", metavar="ACTION", required=True)
    p = _cmd(cs, "snapshot", "cmd_camera:run_snapshot", "save a JPEG with lines, zones, bin regions and detections drawn", common)
    p.add_argument("camera")
    p.add_argument("--output", "-o", default="", help="file to write (default <camera>-<time>.jpg)")
    p.add_argument("--no-blur", action="store_true", help="do not blur people (only with the site's permission)")
    p = _cmd(cs, "reference", "cmd_camera:run_reference", "record a bin's empty or full reference image", common)
    p.add_argument("camera")
    p.add_argument("bin")
    p.add_argument("which", choices=["empty", "full"])

    mqtt = ds.add_parser("mqtt", help="uplink checks")
    qs = mqtt.add_subparsers(dest="mqtt_command", metavar="ACTION", required=True)
    p = _cmd(qs, "check", "cmd_mqtt:run_check", "DNS, TCP, TLS, authentication, publish + acknowledgement, each timed", common)
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per step (default 10)")

    p = _cmd(ds, "buffer", "cmd_buffer:run_buffer", "what waits in the outbox; --export to a file", common)
    p.add_argument("--limit", type=int, default=20, help="rows to show or export (0 with --export: all)")
    p.add_argument("--device", help="only this device")
    p.add_argument("--export", metavar="FILE", help="write the rows to FILE (.jsonl or .csv)")

    p = _cmd(ds, "bundle", "cmd_bundle:run_bundle", "support archive: redacted config, logs, status, versions, raw frames", common)
    p.add_argument("--output", "-o", default="", help="archive to write (default edge-agent-<gateway>-<time>.tar.gz)")


def handle(args: Any) -> int:
    from agent.diag.context import CliError, Ctx

    module, _, func = args.diag_target.partition(":")
    ctx = Ctx(args)
    try:
        return int(getattr(importlib.import_module(f"agent.diag.{module}"), func)(ctx) or 0)
    except CliError as err:
        if ctx.json:
            ctx.emit_json({"error": err.message, "hint": err.hint})
        else:
            print(ctx.style("error: ", "broken") + err.message, file=sys.stderr)
            if err.hint:
                print(ctx.style("  -> " + err.hint, "dim"), file=sys.stderr)
        return err.code
    except BrokenPipeError:
        return 0
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - a technician gets a message, not a traceback
        if os.environ.get("EDGE_AGENT_DEBUG"):
            raise
        print(ctx.style("error: ", "broken") + f"internal error in `diag {args.diag_target}`: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(
            ctx.style("  -> this is a bug: rerun with EDGE_AGENT_DEBUG=1 for the traceback and attach `edge-agent diag bundle` to the report", "dim"),
            file=sys.stderr,
        )
        return 2
    finally:
        ctx.close()
