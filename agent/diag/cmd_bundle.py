"""`diag bundle`: a support archive for the central team.

Contents: config.toml (secrets redacted), status.json, describe.json,
versions.json, frames.json (each bus's flight recorder), logs.txt (journald,
else the configured log file), manifest.json. Every text passes the redaction
layers of agent.diag.redact; the archive is written 0600.
"""

from __future__ import annotations

import io
import json
import os
import platform
import shutil
import subprocess
import tarfile
import time
from typing import Any

from agent.diag import redact
from agent.diag.context import CliError, Ctx

LOG_BYTES = 4 * 1024 * 1024


def _logs(ctx: Ctx) -> tuple[str, str]:
    cfg = ctx.config
    unit = cfg.diagnostics.journal_unit if cfg is not None else "edge-agent"
    if shutil.which("journalctl"):
        try:
            res = subprocess.run(
                ["journalctl", "-u", unit, "--since", "-24h", "-n", "20000", "--no-pager", "-o", "short-iso"], capture_output=True, text=True, timeout=20
            )
            if res.returncode == 0 and res.stdout.strip() and "-- No entries --" not in res.stdout:
                return f"journalctl -u {unit}", res.stdout[-LOG_BYTES:]
        except (OSError, subprocess.TimeoutExpired):
            pass
    log_file = cfg.diagnostics.log_file if cfg is not None else ""
    if log_file:
        try:
            with open(log_file, "rb") as fh:
                fh.seek(max(0, os.path.getsize(log_file) - LOG_BYTES))
                return log_file, fh.read().decode(errors="replace")
        except OSError as exc:
            return log_file, f"(cannot read {log_file}: {exc.strerror})\n"
    return "none", "(no journal entries for the agent and no [diagnostics] log_file configured)\n"


def run_bundle(ctx: Ctx) -> int:
    client = ctx.agent()
    parts: dict[str, Any] = {}
    secret_files: list[str] = []
    if client is not None:
        res = ctx.call("bundle", wait=60)
        parts["status.json"] = res["status"]
        parts["describe.json"] = res["describe"]
        parts["frames.json"] = res["frames"]
        if res.get("config"):
            parts["config.toml"] = res["config"]
        secret_files = list(res.get("redacted_files") or [])
        source = "running agent"
    else:
        from agent.diag.cmd_status import offline_status

        ctx.note(f"{ctx.offline_reason}: bundling what can be read without it")
        parts["status.json"] = offline_status(ctx)
        source = "offline"
    if "config.toml" not in parts and ctx.config_path and os.path.exists(ctx.config_path):
        try:
            text, files = redact.redacted_config(ctx.config_path)
            parts["config.toml"] = text
            secret_files += files
        except OSError as exc:
            parts["config.toml"] = f"# cannot read {ctx.config_path}: {exc.strerror}\n"
    from agent.runtime.app import versions

    parts["versions.json"] = {**versions(), "platform": platform.platform(), "machine": platform.machine(), "os_release": _os_release()}
    log_source, parts["logs.txt"] = _logs(ctx)
    gateway = (parts["status.json"].get("gateway") if isinstance(parts["status.json"], dict) else None) or "gateway"
    parts["manifest.json"] = {
        "gateway": gateway,
        "created": time.time(),
        "source": source,
        "logs": log_source,
        "redacted_files": sorted(set(secret_files)),
        "files": sorted(parts),
    }
    known = redact.known_secrets(secret_files)
    out = ctx.args.output or f"edge-agent-{gateway}-{time.strftime('%Y%m%d-%H%M%S')}.tar.gz"
    _write(out, parts, known)
    if ctx.json:
        ctx.emit_json({"bundle": os.path.abspath(out), "files": sorted(parts), "source": source, "logs": log_source})
    else:
        print(f"wrote {out} ({os.path.getsize(out) / 1000:.0f} kB): {', '.join(sorted(parts))}")
        print(ctx.style(f"secrets redacted; secret files never included: {', '.join(sorted(set(secret_files))) or 'none referenced'}", "dim"))
    return 0


def _os_release() -> str:
    try:
        with open("/etc/os-release", encoding="utf-8") as fh:
            return next((line.split("=", 1)[1].strip().strip('"') for line in fh if line.startswith("PRETTY_NAME=")), "")
    except OSError:
        return ""


def _write(path: str, parts: dict[str, Any], known: list[str]) -> None:
    stem = os.path.basename(path).removesuffix(".tar.gz").removesuffix(".tgz")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}", "pick a writable place with --output (e.g. /tmp/bundle.tar.gz)") from None
    with os.fdopen(fd, "wb") as fh, tarfile.open(fileobj=fh, mode="w:gz") as tar:
        now = time.time()
        for name, content in sorted(parts.items()):
            if not isinstance(content, str):
                content = json.dumps(redact.scrub_obj(content), indent=2, default=str)
            text = redact.scrub_known(redact.scrub_text(content), known)
            data = text.encode()
            info = tarfile.TarInfo(f"{stem}/{name}")
            info.size, info.mtime, info.mode = len(data), int(now), 0o600
            tar.addfile(info, io.BytesIO(data))
