"""The everyday commands: ping, rebirth, read/write a point, restart, reboot, bundle, log level.

Each handler gets the manager and the parsed command and returns the result's
`data`; raising CommandFailed (or any exception) makes the result `failed`
with the reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
import time
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from agent.remote.envelope import Command

if TYPE_CHECKING:
    from agent.remote.manager import RemoteManager

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class CommandFailed(Exception):
    pass


def _arg(cmd: Command, name: str, kind: type | tuple[type, ...]) -> Any:
    value = cmd.args.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise CommandFailed(f"args.{name} is missing or not a {getattr(kind, '__name__', kind)}")
    return value


async def ping(mgr: RemoteManager, cmd: Command) -> dict[str, Any]:
    agent = mgr.agent
    return {"pong": True, "boot": agent.clock.boot_id, "uptime": round(time.time() - agent.started_wall, 3), "received_ts": cmd.ts}


async def rebirth(mgr: RemoteManager, cmd: Command) -> dict[str, Any]:
    from agent.uplink.payload import birth_payload

    agent, uplink = mgr.agent, mgr.agent.uplink
    payload = json.loads(
        birth_payload(agent.describe(), protocol=uplink.stats()["protocol"], gateway=mgr.gateway, site=agent.config.gateway.site, boot=agent.clock.boot_id)
    )
    payload["reason"] = "rebirth"
    if not uplink.publish(uplink.topics.status, json.dumps(payload, separators=(",", ":")).encode(), retain=True):
        raise CommandFailed("not connected to the broker; the birth goes out on the next connect anyway")
    return {"devices": len(payload.get("devices", []))}


def _driver(mgr: RemoteManager, cmd: Command) -> Any:
    name = _arg(cmd, "device", str)
    driver = mgr.agent.drivers.get(name)
    if driver is None:
        raise CommandFailed(f"no device {name!r} on this gateway (devices: {', '.join(sorted(mgr.agent.drivers)) or 'none'})")
    return driver


async def read_point(mgr: RemoteManager, cmd: Command) -> dict[str, Any]:
    driver, point = _driver(mgr, cmd), _arg(cmd, "point", str)
    try:
        r = await asyncio.wait_for(driver.read_point(point), 15)
    except NotImplementedError as exc:
        raise CommandFailed(str(exc)) from None
    except (KeyError, ValueError) as exc:
        raise CommandFailed(f"cannot read {point!r}: {exc}") from None
    if r.status != "ok":
        raise CommandFailed(f"{r.device}.{r.metric}: {r.status} {r.detail}".strip())
    return {"device": r.device, "point": r.metric, "value": r.value, "unit": r.unit, "status": r.status, "ts": r.wall}


async def write_point(mgr: RemoteManager, cmd: Command) -> dict[str, Any]:
    driver, point = _driver(mgr, cmd), _arg(cmd, "point", str)
    if "value" not in cmd.args or not isinstance(cmd.args["value"], int | float | bool):
        raise CommandFailed("args.value must be a number or a boolean")
    try:
        await asyncio.wait_for(driver.write_point(point, cmd.args["value"]), 15)
    except NotImplementedError as exc:
        raise CommandFailed(str(exc)) from None
    except (KeyError, ValueError, PermissionError) as exc:
        raise CommandFailed(f"cannot write {point!r}: {exc}") from None
    mgr.log.info("remote write %s.%s = %r (command %s)", driver.config.name, point, cmd.args["value"], cmd.id)
    return {"device": driver.config.name, "point": point, "value": cmd.args["value"]}


async def restart(mgr: RemoteManager, cmd: Command) -> dict[str, Any]:
    mgr.results.send_after_restart(cmd.name, cmd.id, "done", previous_boot_uptime=round(time.time() - mgr.agent.started_wall, 3))
    mgr.request_restart("restart command " + cmd.id)
    return {"restarting": True}


async def reboot(mgr: RemoteManager, cmd: Command) -> dict[str, Any]:
    if not mgr.config.allow_reboot:
        raise CommandFailed("reboot is disabled on this gateway; set [remote] allow_reboot = true to allow it")
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        raise CommandFailed("systemctl not found: this gateway is not run by systemd, reboot it by hand")
    # Only ever through systemd: it stops the agent cleanly (SIGTERM, final outbox commit) before the reboot.
    proc = await asyncio.create_subprocess_exec(
        systemctl, "reboot", stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    except TimeoutError:
        proc.kill()
        raise CommandFailed("systemctl reboot did not return within 30 s") from None
    if proc.returncode != 0:
        raise CommandFailed(
            f"systemctl reboot failed ({proc.returncode}): {out.decode(errors='replace').strip()[:300]}; the agent's user needs a polkit rule for reboot (docs/security.md)"
        )
    mgr.log.warning("reboot requested by command %s", cmd.id)
    return {"rebooting": True}


async def bundle(mgr: RemoteManager, cmd: Command) -> dict[str, Any]:
    """The diagnostics bundle of `edge-agent diag bundle`, sent in chunks to <base>/data/<id>/<n>."""
    from agent.diag import cmd_bundle, redact
    from agent.diag.handlers import h_bundle

    agent = mgr.agent
    res = await h_bundle(agent, {}, None)
    from agent.runtime.app import versions

    parts: dict[str, Any] = {"status.json": res["status"], "describe.json": res["describe"], "frames.json": res["frames"], "versions.json": versions()}
    if res.get("config"):
        parts["config.toml"] = res["config"]
    log_source, parts["logs.txt"] = await asyncio.to_thread(cmd_bundle._logs, SimpleNamespace(config=agent.config))
    files = list(res.get("redacted_files") or [])
    parts["manifest.json"] = {
        "gateway": mgr.gateway,
        "created": time.time(),
        "source": "remote command " + cmd.id,
        "logs": log_source,
        "redacted_files": sorted(set(files)),
        "files": sorted(parts),
    }
    path = os.path.join(mgr.state_dir, f"bundle-{cmd.id}.tar.gz")
    await asyncio.to_thread(cmd_bundle._write, path, parts, redact.known_secrets(files))
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    finally:
        os.unlink(path)
    size = mgr.config.bundle_chunk_bytes
    chunks = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
    topic = f"{mgr.results.data_topic}/{cmd.id}"
    for n, chunk in enumerate(chunks):
        mgr.results.send_raw(f"{topic}/{n}", chunk)
    return {"topic": topic, "chunks": len(chunks), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "files": sorted(parts)}


async def log_level(mgr: RemoteManager, cmd: Command) -> dict[str, Any]:
    level = _arg(cmd, "level", str).lower()
    if level not in LEVELS:
        raise CommandFailed(f"args.level must be one of {', '.join(LEVELS)}")
    duration = cmd.args.get("duration", 600)
    if isinstance(duration, bool) or not isinstance(duration, int | float) or not 0 < duration <= mgr.config.max_log_level_duration:
        raise CommandFailed(f"args.duration must be seconds in (0, {mgr.config.max_log_level_duration:.0f}] ([remote] max_log_level_duration)")
    root = logging.getLogger()
    base = mgr.base_log_level
    if mgr.log_level_timer is not None:
        mgr.log_level_timer.cancel()
    root.setLevel(LEVELS[level])
    mgr.log.warning("log level %s for %.0f s (command %s), then back to %s", level, duration, cmd.id, logging.getLevelName(base).lower())

    def restore() -> None:
        root.setLevel(base)
        mgr.log_level_timer = None
        mgr.log.warning("log level back to %s", logging.getLevelName(base).lower())

    mgr.log_level_timer = asyncio.get_running_loop().call_later(duration, restore)
    return {"level": level, "until": time.time() + duration}


HANDLERS = {
    "ping": ping,
    "rebirth": rebirth,
    "read": read_point,
    "write": write_point,
    "restart": restart,
    "reboot": reboot,
    "bundle": bundle,
    "log_level": log_level,
}
