"""`diag status`, `diag devices`, `diag readings`: what the agent knows right now."""

from __future__ import annotations

import os
import time
from typing import Any

from agent.diag import health
from agent.diag.context import CliError, Ctx
from agent.diag.facts import system_facts, uplink_certificates
from agent.diag.render import ago, status_screen, table, value_text


def offline_status(ctx: Ctx) -> dict[str, Any]:
    """What can be said with the agent stopped: config, disk, certificates, the outbox file."""
    cfg = ctx.config
    st: dict[str, Any] = {"gateway": "?", "site": "?", "now": time.time(), "agent_running": False}
    findings = [
        health.finding(
            health.BROKEN,
            "agent",
            "agent",
            f"not running: {ctx.offline_reason}",
            "start it: sudo systemctl start edge-agent; if it does not stay up: journalctl -u edge-agent -n 50",
        )
    ]
    if cfg is None:
        findings.append(
            health.finding(
                health.BROKEN,
                "config",
                "config",
                ctx.config_error.splitlines()[0] if ctx.config_error else "no config",
                "pass --config FILE; check it with `edge-agent config check FILE`",
            )
        )
        st["system"] = system_facts("/")
    else:
        st.update(gateway=cfg.gateway.id, site=cfg.gateway.site)
        st["system"] = system_facts(ctx.data_dir if os.path.isdir(ctx.data_dir) else "/")
        st["certificates"] = uplink_certificates(cfg.uplink)
        st["devices"] = {d.name: {"name": d.name, "driver": d.driver, "bus": getattr(d, "bus", None), "polls": 0} for d in cfg.devices}
        try:
            from agent.diag.buffer import outbox_path, summarise

            summ = summarise(outbox_path(cfg, ctx.data_dir))
            st["outbox"] = {"depth": summ["count"], "oldest_wall": summ["oldest_wall"], "file_bytes": summ["file_bytes"]}
        except Exception as exc:  # noqa: BLE001 - a missing or damaged outbox must not hide the rest
            st["outbox_error"] = str(exc)
        more = health.evaluate({k: v for k, v in st.items() if k != "devices"})
        findings += more
    from agent.runtime.app import versions

    st["versions"] = versions()
    st["findings"] = sorted(findings, key=lambda f: -health.LEVELS[f["level"]])
    st["health"] = health.BROKEN
    return st


def run_status(ctx: Ctx) -> int:
    client = ctx.agent()
    if client is None:
        st = offline_status(ctx)
        note = "agent not running: showing what can be read without it"
    else:
        st = ctx.call("status")
        st["agent_running"] = True
        note = ""
    code = health.LEVELS.get(st.get("health", "broken"), 2)
    if ctx.json:
        ctx.emit_json(st)
    else:
        print(status_screen(st, ctx.style, offline_note=note))
    return code


def run_devices(ctx: Ctx) -> int:
    client = ctx.agent()
    if client is None:
        cfg = ctx.need_config()
        if ctx.json:
            ctx.emit_json({"agent_running": False, "devices": [d.model_dump(mode="json") for d in cfg.devices]})
            return 2
        ctx.note(f"{ctx.offline_reason}: live values need the agent. Configured devices:")
        print(
            table(["device", "driver", "bus", "poll s"], [[d.name, d.driver, getattr(d, "bus", None) or "-", d.poll_interval] for d in cfg.devices], ctx.style)
        )
        ctx.note("read a device directly with `edge-agent diag modbus read --bus BUS --unit N --address A`")
        return 2
    res = ctx.call("devices")
    if ctx.json:
        ctx.emit_json(res)
        return 0
    rows = []
    now = time.time()
    worst = 0
    for name, d in sorted(res["devices"].items()):
        state = ("online", "ok") if d.get("online") else (("waiting", "dim") if not d.get("polls") else ("OFFLINE", "broken"))
        if d.get("polls") and not d.get("online"):
            worst = 1
        readings = d.get("last_readings") or {}
        if not readings:
            rows.append([name, state, "-", "-", "-", "", (d.get("last_error") or "").split(" | ")[0]])
        for i, (metric, r) in enumerate(sorted(readings.items())):
            st_style = "ok" if r.get("status") == "ok" else "broken"
            rows.append(
                [
                    name if i == 0 else "",
                    state if i == 0 else "",
                    metric,
                    value_text(r.get("value"), r.get("unit", "")),
                    (r.get("status"), st_style),
                    ago(r.get("wall"), now),
                    (d.get("last_error") or "").split(" | ")[0] if i == 0 else "",
                ]
            )
    print(table(["device", "state", "metric", "value", "status", "when", "last error"], rows, ctx.style))
    return worst


def _reading_line(ctx: Ctx, r: dict[str, Any]) -> str:
    stamp = time.strftime("%H:%M:%S", time.localtime(r.get("wall") or 0))
    status = r.get("status", "ok")
    st = ctx.style(status, "ok" if status == "ok" else "broken")
    detail = f"  {r['detail']}" if r.get("detail") else ""
    return f"{stamp}  {r.get('device', ''):<16} {r.get('metric', ''):<22} {value_text(r.get('value'), r.get('unit', '')):>16}  {st}{detail}"


def run_readings(ctx: Ctx) -> int:
    a = ctx.args
    args = {"device": a.device, "metric": a.metric, "last": a.last, "follow": a.follow}
    if not a.follow:
        res = ctx.call("readings", **args)
        if ctx.json:
            ctx.emit_json(res)
        else:
            for r in res["readings"]:
                print(_reading_line(ctx, r))
            if not res["readings"]:
                ctx.note("no readings yet (devices poll at their poll_interval)")
        return 0
    client = ctx.agent()
    if client is None:
        raise CliError(f"the agent is not running ({ctx.offline_reason})", "start it, or read a device directly with `diag modbus read` / `diag serial sniff`")
    if not ctx.json:
        ctx.note("following readings; Ctrl-C to stop")
    from agent.diag.client import RemoteError

    try:
        for r in client.stream("readings", wait=0, **args):
            if ctx.json:
                ctx.emit_line(r)
            else:
                print(_reading_line(ctx, r), flush=True)
    except RemoteError as err:
        raise CliError(err.message, err.hint) from None
    return 0
