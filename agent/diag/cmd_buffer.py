"""`diag buffer`: what waits in the outbox, and export of it (JSON lines or CSV)."""

from __future__ import annotations

import csv
import json
from typing import Any

from agent.diag import buffer
from agent.diag.client import RemoteError
from agent.diag.context import CliError, Ctx
from agent.diag.render import ago, size, table, value_text


def run_buffer(ctx: Ctx) -> int:
    a = ctx.args
    client = ctx.agent()
    if a.export:
        return _export(ctx, client)
    if client is not None:
        res = ctx.call("buffer", limit=a.limit, device=a.device)
    else:
        cfg = ctx.need_config()
        path = buffer.outbox_path(cfg, ctx.data_dir)
        if not ctx.json:
            ctx.note(f"{ctx.offline_reason}: reading {path} directly")
        try:
            res = {"path": path, "stats": {}, **buffer.summarise(path, a.device), "rows": buffer.rows(path, 0, a.limit, a.device)}
        except buffer.BufferMissing as exc:
            raise CliError(str(exc), "check [storage] path and data_dir in the config") from None
    if ctx.json:
        ctx.emit_json(res)
        return 0
    print(f"outbox {res['path']}: {res['count']} readings waiting, {size(res['file_bytes'])} on disk")
    if res["count"]:
        print(f"  sequence {res['first_seq']}..{res['last_seq']}, oldest {ago(res['oldest_wall'])}, newest {ago(res['newest_wall'])}")
        print(
            table(
                ["device", "waiting", "oldest", "statuses"], [[d["device"], d["count"], ago(d["oldest"]), d["statuses"]] for d in res["per_device"]], ctx.style
            )
        )
    stats = res.get("stats") or {}
    if stats.get("dropped"):
        print(ctx.style(f"  {stats['dropped']} readings were dropped unsent: {stats.get('dropped_by_reason')}", "degraded"))
    if res.get("rows"):
        print()
        print(
            table(
                ["seq", "device", "metric", "value", "status", "when"],
                [[r["seq"], r["device"], r["metric"], value_text(r["value"], r["unit"]), r["status"], ago(r["wall"])] for r in res["rows"]],
                ctx.style,
            )
        )
    return 0


def _rows(ctx: Ctx, client: Any) -> Any:
    a = ctx.args
    limit = a.limit if a.limit else 0
    if client is not None:
        try:
            yield from client.stream("buffer", wait=0, export=True, limit=limit, device=a.device)
        except RemoteError as err:
            raise CliError(err.message, err.hint) from None
        return
    path = buffer.outbox_path(ctx.need_config(), ctx.data_dir)
    after, sent = 0, 0
    while not limit or sent < limit:
        chunk = buffer.rows(path, after, 500 if not limit else min(500, limit - sent), a.device)
        if not chunk:
            return
        yield from chunk
        sent += len(chunk)
        after = chunk[-1]["seq"]


def _export(ctx: Ctx, client: Any) -> int:
    path = ctx.args.export
    n = 0
    fields = ["seq", "device", "metric", "value", "unit", "status", "detail", "wall", "synced", "boot_id", "mono_ns"]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fields, extrasaction="ignore") if path.endswith(".csv") else None
        if writer:
            writer.writeheader()
        for row in _rows(ctx, client):
            if writer:
                writer.writerow(row)
            else:
                fh.write(json.dumps(row, default=str) + "\n")
            n += 1
    if ctx.json:
        ctx.emit_json({"exported": n, "file": path})
    else:
        print(f"exported {n} readings to {path}")
    return 0
