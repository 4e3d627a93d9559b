"""Human output: tables and colours (NO_COLOR and non-terminals get plain text)."""

from __future__ import annotations

import os
import re
import sys
import time
from typing import Any

_CODES = {"ok": "32", "degraded": "33", "broken": "31;1", "dim": "2", "bold": "1", "cyan": "36", "red": "31", "green": "32", "yellow": "33", "mark": "7"}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
MARK = {"ok": "OK  ", "degraded": "WARN", "broken": "FAIL"}


def colour_enabled(stream: Any = None, force: bool | None = None) -> bool:
    if force is not None:
        return force
    stream = stream or sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)()) and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


class Style:
    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def __call__(self, text: Any, style: str | None) -> str:
        text = str(text)
        if not self.colour or not style or style not in _CODES:
            return text
        return f"\x1b[{_CODES[style]}m{text}\x1b[0m"


def visible_len(text: str) -> int:
    return len(_ANSI.sub("", text))


def table(headers: list[str], rows: list[list[Any]], style: Style, max_col: int = 60) -> str:
    """Rows of cells; a cell is a value or (value, style)."""
    plain = [[(c[0] if isinstance(c, tuple) else c) for c in row] for row in rows]
    text = [[_cut("" if v is None else str(v), max_col) for v in row] for row in plain]
    widths = [len(h) for h in headers]
    for row in text:
        for i, v in enumerate(row):
            widths[i] = max(widths[i], len(v))
    lines = ["  ".join(style(h.ljust(widths[i]), "bold") for i, h in enumerate(headers)).rstrip()]
    for row, raw in zip(text, rows, strict=True):
        cells = []
        for i, v in enumerate(row):
            st = raw[i][1] if isinstance(raw[i], tuple) else None
            cells.append(style(v.ljust(widths[i]), st))
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "~"


def ago(wall: float | None, now: float | None = None) -> str:
    if not wall:
        return "never"
    s = max(0.0, (now or time.time()) - wall)
    if s < 120:
        return f"{s:.0f}s ago"
    if s < 7200:
        return f"{s / 60:.0f}m ago"
    if s < 172800:
        return f"{s / 3600:.1f}h ago"
    return f"{s / 86400:.0f}d ago"


def duration(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(s)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{d}d{h:02d}h" if d else f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def size(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def value_text(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        value = f"{value:.6g}"
    return f"{value} {unit}".strip()


def findings_block(findings: list[dict[str, str]], style: Style, *, only_problems: bool = False) -> str:
    lines = []
    for f in findings:
        if only_problems and f["level"] == "ok":
            continue
        lines.append(
            f"{style(MARK[f['level']], f['level'])}  {style(f['area'] + ' ' + f['subject'] if f['area'] != f['subject'] else f['subject'], 'bold')}: {f['summary']}"
        )
        if f.get("hint") and f["level"] != "ok":
            lines.append(f"      {style('-> ' + f['hint'], 'dim')}")
    return "\n".join(lines)


def status_screen(st: dict[str, Any], style: Style, *, offline_note: str = "") -> str:
    now = st.get("now") or time.time()
    level = st.get("health", "ok")
    out = [
        f"{style('edge-agent', 'bold')} {st.get('gateway', '?')} @ {st.get('site', '?')}   "
        f"health {style(level.upper(), level)}   up {duration(st.get('uptime'))}   pid {st.get('pid', '-')}"
    ]
    if offline_note:
        out.append(style(offline_note, "yellow"))
    out += ["", findings_block(st.get("findings", []), style)]
    up = st.get("uplink") or {}
    if up:
        out += ["", style("Uplink", "bold")]
        out.append(
            f"  broker {up.get('broker') or str(up.get('host', '?')) + ':' + str(up.get('port', '?'))}  "
            f"connected {style('yes', 'ok') if up.get('connected') else style('no', 'broken')}  "
            f"last ack {ago(up.get('last_ack_wall') or up.get('last_ack'), now)}"
        )
        if up.get("last_error") and not up.get("connected"):
            out.append(f"  last error: {up['last_error']}")
        for c in st.get("certificates") or []:
            if "days_left" in c:
                out.append(f"  {c.get('role')} cert {c.get('subject')}: expires in {c['days_left']:.0f} days")
        if up.get("server_cert_expiry"):
            out.append(f"  broker cert: expires in {(up['server_cert_expiry'] - now) / 86400:.0f} days")
    ob = st.get("outbox") or {}
    if ob:
        age = ob.get("oldest_unsent_age")
        if age is None and ob.get("oldest_wall"):
            age = now - ob["oldest_wall"]
        out += [
            "",
            style("Outbox", "bold"),
            f"  waiting {ob.get('depth', '?')}  oldest unsent {duration(age) if age is not None else '-'}  dropped {ob.get('dropped', 0)}  on disk {size(ob.get('bytes') or ob.get('file_bytes'))}",
        ]
    devs = st.get("devices") or {}
    if devs:
        rows = []
        for name, d in sorted(devs.items(), key=lambda kv: (kv[1].get("online", False), kv[0])):
            state = ("online", "ok") if d.get("online") else (("waiting", "dim") if not d.get("polls") else ("OFFLINE", "broken"))
            errs = sum((d.get("error_counts") or {}).values())
            rows.append(
                [
                    name,
                    d.get("driver", ""),
                    d.get("bus") or "-",
                    state,
                    ago(d.get("last_ok"), now),
                    (errs, "degraded" if errs else None),
                    (d.get("last_error") or "").split(" | ")[0],
                ]
            )
        out += ["", style("Devices", "bold"), table(["device", "driver", "bus", "state", "last reading", "errors", "last error"], rows, style)]
    cams = st.get("cameras") or {}
    if isinstance(cams, dict) and cams:
        rows = [
            [
                n,
                c.get("fps", "-"),
                c.get("frames_analysed", "-"),
                c.get("slots_missed", 0),
                c.get("model") or "-",
                (c.get("stage_ms") or {}).get("detect", "-"),
                c.get("error") or c.get("last_error") or "",
            ]
            for n, c in sorted(cams.items())
            if n != "worker" and isinstance(c, dict)
        ]
        if rows:
            out += ["", style("Cameras", "bold"), table(["camera", "fps", "analysed", "missed", "model", "detect ms", "last error"], rows, style)]
    sysf = st.get("system") or {}
    temp = sysf.get("cpu_temperature")
    mem = f"{size(sysf.get('memory_available'))} free of {size(sysf.get('memory_total'))}" if sysf.get("memory_total") else "-"
    out += [
        "",
        style("System", "bold"),
        f"  cpu {f'{temp:.0f} C' if temp is not None else '-'}  load {sysf.get('load_1m', '-')}  memory {mem}  disk {size(sysf.get('disk_free'))} free of {size(sysf.get('disk_total'))}",
    ]
    vers = st.get("versions") or {}
    out.append("  " + "  ".join(f"{k} {v}" for k, v in vers.items()))
    return "\n".join(out)
