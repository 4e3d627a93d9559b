"""Batch mode: a CSV of gateways, one card after another, then a summary.

CSV columns: `config` (required; relative paths are relative to the CSV),
optional `gateway_id` (checked against the config), `target` (per-row
target, overrides --target), `hostname`, and network overrides `wifi_ssid`,
`wifi_country`, `eth_address`, `eth_gateway`, `dns` (space separated).
A --target containing {gateway_id} makes one image file per gateway; a fixed
target (a card reader) prompts to swap cards between gateways.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import FlashError
from .gatewayconf import load_gateway_config
from .provision import Context, Job, flash_one

NETWORK_COLUMNS = ("hostname", "wifi_ssid", "wifi_country", "eth_address", "eth_gateway", "dns")
KNOWN_COLUMNS = {"config", "gateway_id", "target", *NETWORK_COLUMNS}


def read_jobs(csv_path: str, default_target: str) -> list[tuple[str, Job]]:
    path = Path(csv_path)
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            columns = set(reader.fieldnames or [])
            rows = list(reader)
    except OSError as exc:
        raise FlashError(f"cannot read batch file {path}: {exc.strerror}", "check the path") from exc
    except csv.Error as exc:
        raise FlashError(f"{path} is not valid CSV: {exc}", "save it as CSV with a header row") from exc
    if "config" not in columns:
        raise FlashError(f"{path} has no 'config' column", "the header needs at least: config")
    unknown = columns - KNOWN_COLUMNS
    if unknown:
        raise FlashError(f"{path} has unknown columns: {', '.join(sorted(unknown))}", f"allowed columns: {', '.join(sorted(KNOWN_COLUMNS))}")
    jobs: list[tuple[str, Job]] = []
    seen: set[str] = set()
    for line, row in enumerate(rows, 2):
        config = (row.get("config") or "").strip()
        if not config:
            raise FlashError(f"{path}:{line}: the config column is empty", "give each gateway's TOML file")
        config_path = Path(config) if Path(config).is_absolute() else path.parent / config
        gateway_id = load_gateway_config(str(config_path)).gateway_id
        wanted = (row.get("gateway_id") or "").strip()
        if wanted and wanted != gateway_id:
            raise FlashError(f"{path}:{line}: gateway_id {wanted!r} but {config_path} says {gateway_id!r}", "fix the CSV or the config so they agree")
        if gateway_id in seen:
            raise FlashError(f"{path}:{line}: gateway {gateway_id} appears twice", "each gateway gets one card")
        seen.add(gateway_id)
        target = (row.get("target") or "").strip() or default_target
        if not target:
            raise FlashError(f"{path}:{line}: no target", "pass --target or add a target column")
        network = {k: (row.get(k) or "").strip() for k in NETWORK_COLUMNS}
        jobs.append((gateway_id, Job(str(config_path), target.replace("{gateway_id}", gateway_id), network)))
    if not jobs:
        raise FlashError(f"{path} lists no gateways", "add one row per gateway")
    return jobs


def run_batch(ctx: Context, csv_path: str, default_target: str, ask: Callable[[str], str] = input) -> int:
    """Flash every row; returns the exit status (0 all verified, 2 if any failed)."""
    jobs = read_jobs(csv_path, default_target)
    swap = len({job.target for _, job in jobs}) < len(jobs)
    results: list[dict[str, Any]] = []
    ctx.say(f"batch: {len(jobs)} gateways from {csv_path}")
    verified_before = {r.get("gateway_id") for r in ctx.inventory.rows() if r.get("status") == "verified"}
    for index, (gateway_id, job) in enumerate(jobs, 1):
        ctx.say(f"\n=== {index}/{len(jobs)}: {gateway_id} -> {job.target}")
        if gateway_id in verified_before and not ctx.opts.replace:
            # re-running a batch resumes it: gateways with a verified card are not written again
            ctx.say(f"{gateway_id} already has a verified card in {ctx.inventory.json_path}; skipped (--replace to redo)")
            results.append({"gateway_id": gateway_id, "status": "done before"})
            continue
        if swap and not ctx.opts.dry_run:
            try:
                answer = ask(f"Insert the card for {gateway_id} into {job.target}, then press Enter (s = skip this gateway, q = stop): ").strip().lower()
            except EOFError:
                answer = "q"
            if answer == "q":
                results += [{"gateway_id": g, "status": "not done"} for g, _ in jobs[index - 1 :]]
                break
            if answer == "s":
                results.append({"gateway_id": gateway_id, "status": "skipped"})
                continue
        started = time.monotonic()
        try:
            row = flash_one(ctx, job)
        except FlashError as exc:
            ctx.say(exc.render())
            results.append({"gateway_id": gateway_id, "status": "FAILED", "error": exc.message.splitlines()[0]})
            continue
        row["seconds"] = time.monotonic() - started
        results.append(row)
    ctx.say("\nsummary")
    ctx.say(f"  {'gateway':<24} {'status':<10} {'serial':<14} {'fingerprint':<18} time")
    for r in results:
        fp = (r.get("certificate_sha256") or r.get("public_key_sha256") or "")[:16]
        secs = f"{r['seconds']:.0f} s" if "seconds" in r else ""
        ctx.say(f"  {r['gateway_id']:<24} {r['status']:<10} {r.get('target_serial', '') or '-':<14} {fp or '-':<18} {secs}")
        if r.get("error"):
            ctx.say(f"      {r['error']}")
    done = sum(1 for r in results if r["status"] in ("verified", "dry-run", "done before"))
    ctx.say(f"  {done} of {len(jobs)} done; inventory: {ctx.inventory.csv_path}")
    return 0 if done == len(jobs) else 2
