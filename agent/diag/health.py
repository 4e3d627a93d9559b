"""Turn the agent's status into findings, worst first, and an exit code.

Levels: ok (0), degraded (1: working, but something needs a look), broken
(2: data is not being produced or not reaching the hub). Each finding names
the subject and says what to do next; docs/field-guide.md lists them all.
"""

from __future__ import annotations

import time
from typing import Any

OK, DEGRADED, BROKEN = "ok", "degraded", "broken"
LEVELS = {OK: 0, DEGRADED: 1, BROKEN: 2}

CERT_WARN_DAYS = 14
TEMP_WARN, TEMP_BROKEN = 80.0, 85.0
DISK_WARN, DISK_BROKEN = 0.05, 0.01
OUTBOX_OLD = 3600.0  # oldest unsent reading older than this: the uplink is not keeping up

# What to try, by the kind of error a device or bus last reported.
_DEVICE_HINTS = (
    ("expected", "another unit id answered: set unit_id to the id the device really has (`edge-agent diag modbus scan`)"),
    ("crc", "frames arrive corrupted: check A/B wiring (swap them), termination and baud rate (`diag modbus scan --baud ...`)"),
    ("bad_frame", "bytes arrive but are not valid frames: check baud rate, parity and A/B wiring (`diag serial sniff`, `diag modbus scan`)"),
    ("garbage", "bytes on the line are not valid frames: check baud rate and the sensor type (`diag serial sniff`)"),
    ("checksum", "frames arrive corrupted: check wiring and baud rate (`diag serial sniff`)"),
    ("timeout", "no answer: check power, A/B wiring, unit id and baud rate (`diag modbus scan`); a slow device needs a larger failure.timeout"),
    ("exception", "the device refused the request: check the register addresses of the profile (`diag modbus read`)"),
    ("permission", "the agent's user cannot open the port: add it to the dialout group"),
    ("offline", "the port or host cannot be opened: check the cable/adapter, the port path or host and port in [[buses]]"),
)


def main_error(error: str | None) -> str:
    """The error without the flight-recorder tail the drivers append (" | last frames: ...")."""
    return (error or "").split(" | ", 1)[0]


def hint_for(error: str | None) -> str:
    text = main_error(error).lower()
    for key, hint in _DEVICE_HINTS:
        if key in text:
            return hint
    return "see the last error; `edge-agent diag devices` shows live values"


def finding(level: str, area: str, subject: str, summary: str, hint: str = "") -> dict[str, str]:
    return {"level": level, "area": area, "subject": subject, "summary": summary, "hint": hint}


def _ago(wall: float | None, now: float) -> str:
    if not wall:
        return "never"
    s = max(0.0, now - wall)
    if s < 120:
        return f"{s:.0f} s ago"
    if s < 7200:
        return f"{s / 60:.0f} min ago"
    return f"{s / 3600:.1f} h ago"


def evaluate(st: dict[str, Any], now: float | None = None) -> list[dict[str, str]]:
    now = now or time.time()
    out: list[dict[str, str]] = []
    out += _uplink(st.get("uplink") or {}, st.get("certificates") or [], now)
    out += _outbox(st.get("outbox") or {}, now)
    clock = st.get("clock") or {}
    if clock and not clock.get("synced"):
        out.append(
            finding(
                DEGRADED,
                "clock",
                "clock",
                f"wall clock not synchronised (source {clock.get('source')})",
                "check NTP reachability (timedatectl) or the GPS; readings are kept and re-based once it syncs",
            )
        )
    elif clock:
        out.append(finding(OK, "clock", "clock", f"synchronised ({clock.get('source')})"))
    for name, dev in sorted((st.get("devices") or {}).items()):
        out.append(_device(name, dev, now))
    cams = st.get("cameras") if isinstance(st.get("cameras"), dict) else {}
    worker = cams.get("worker") or {}
    if worker and not worker.get("alive"):
        out.append(
            finding(
                BROKEN,
                "camera",
                "vision worker",
                f"not running ({worker.get('restarts', 0)} restarts): {worker.get('last_error') or 'no error recorded'}",
                "see the journal (journalctl -u edge-agent); a model file or camera driver problem stops the worker",
            )
        )
    for name, cam in sorted(cams.items()):
        if name != "worker" and isinstance(cam, dict):
            out.append(_camera(name, cam))
    out += _load(st.get("load") or {})
    for name, task in sorted((st.get("tasks") or {}).items()):
        if task.get("failing"):
            out.append(
                finding(
                    BROKEN,
                    "task",
                    name,
                    f"crashing and restarting ({task.get('restarts')} restarts): {task.get('last_error')}",
                    "see the journal (journalctl -u edge-agent) and attach `diag bundle` to a report",
                )
            )
    out += _system(st.get("system") or {})
    out.sort(key=lambda f: -LEVELS[f["level"]])
    return out


def exit_code(findings: list[dict[str, str]]) -> int:
    return max((LEVELS[f["level"]] for f in findings), default=0)


def _uplink(up: dict[str, Any], certs: list[dict[str, Any]], now: float) -> list[dict[str, str]]:
    out = []
    if up:
        where = up.get("broker") or f"{up.get('host', '?')}:{up.get('port', '?')}"
        last_ack = up.get("last_ack_wall") or up.get("last_ack")
        if up.get("connected"):
            out.append(finding(OK, "uplink", "uplink", f"connected to {where}; last acknowledged {_ago(last_ack, now)}"))
        else:
            err = f": {up['last_error']}" if up.get("last_error") else ""
            out.append(
                finding(
                    BROKEN,
                    "uplink",
                    "uplink",
                    f"not connected to {where}{err}; last acknowledged {_ago(last_ack, now)}",
                    "run `edge-agent diag mqtt check` to find the failing step; readings are kept in the outbox meanwhile",
                )
            )
    certs = list(certs)
    for role, key in (("broker", "server_cert_expiry"), ("client", "cert_expiry")):
        if up.get(key) and not any(c.get("role") == role for c in certs):
            certs.append(
                {"role": role, "subject": up.get("broker", "") if role == "broker" else "uplink.tls.cert_file", "days_left": round((up[key] - now) / 86400, 1)}
            )
    for cert in certs:
        label = f"{cert.get('role', '')} certificate"
        if "error" in cert:
            out.append(finding(BROKEN, "uplink", label, f"{cert.get('file')}: {cert['error']}", "fix the path in [uplink.tls] or re-provision the certificate"))
            continue
        days = cert.get("days_left")
        if days is None:
            continue
        if days < 0:
            out.append(
                finding(
                    BROKEN,
                    "uplink",
                    label,
                    f"expired {-days:.0f} days ago ({cert.get('subject')})",
                    "install a renewed certificate (edge-flash or the hub's renewal) and restart the agent",
                )
            )
        elif days < CERT_WARN_DAYS:
            out.append(finding(DEGRADED, "uplink", label, f"expires in {days:.0f} days ({cert.get('subject')})", "renew the certificate before it expires"))
    return out


def _outbox(ob: dict[str, Any], now: float) -> list[dict[str, str]]:
    if not ob:
        return []
    depth = ob.get("depth", 0) or 0
    dropped = ob.get("dropped", 0) or 0
    age = ob.get("oldest_unsent_age")
    if age is None and ob.get("oldest_wall") and depth:
        age = now - ob["oldest_wall"]
    out = []
    if ob.get("degraded"):
        out.append(
            finding(
                BROKEN,
                "outbox",
                "outbox",
                f"storage failing, readings held in memory only: {ob.get('last_error')}",
                "check the SD card and free space on the data partition (dmesg, df -h); the agent retries the file",
            )
        )
    if dropped:
        reasons = ", ".join(f"{k} {v}" for k, v in (ob.get("dropped_by_reason") or {}).items()) or "cap reached"
        out.append(
            finding(
                DEGRADED,
                "outbox",
                "outbox",
                f"{dropped} readings dropped unsent ({reasons}); {depth} waiting",
                "the uplink was down longer than [storage] caps allow; fix the uplink, or raise max_bytes if the disk allows",
            )
        )
    elif age is not None and depth and age > OUTBOX_OLD:
        out.append(
            finding(
                DEGRADED,
                "outbox",
                "outbox",
                f"{depth} readings waiting, oldest {age / 3600:.1f} h old",
                "the uplink is not draining the outbox: `edge-agent diag mqtt check`",
            )
        )
    if not out:
        out.append(finding(OK, "outbox", "outbox", f"{depth} readings waiting"))
    return out


def _device(name: str, dev: dict[str, Any], now: float) -> dict[str, str]:
    polls = dev.get("polls", 0)
    err = main_error(dev.get("last_error")) or None
    counts = dev.get("error_counts") or {}
    bad = {m: r for m, r in (dev.get("last_readings") or {}).items() if r.get("status") not in (None, "ok")}
    if not polls:
        return finding(OK, "device", name, "waiting for the first poll")
    if not dev.get("online"):
        return finding(
            BROKEN,
            "device",
            name,
            f"offline since {_ago(dev.get('last_error_at'), now)}: {err}; last good reading {_ago(dev.get('last_ok'), now)}",
            hint_for(err),
        )
    if bad:
        m, r = sorted(bad.items())[0]
        more = f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""
        return finding(
            DEGRADED,
            "device",
            name,
            f"{m}: {r.get('status')} {r.get('detail', '') or ''}".rstrip() + more,
            hint_for(f"{r.get('status')} {r.get('detail', '')}"),
        )
    if err and dev.get("last_error_at") and dev.get("last_ok") and dev["last_error_at"] > now - 600:
        total = sum(counts.values())
        return finding(
            DEGRADED,
            "device",
            name,
            f"online, but {total} error{'' if total == 1 else 's'} lately; last {_ago(dev['last_error_at'], now)}: {err}",
            hint_for(err),
        )
    return finding(OK, "device", name, f"online, last reading {_ago(dev.get('last_ok'), now)}")


def _load(load: dict[str, Any]) -> list[dict[str, str]]:
    if not load.get("overloaded"):
        return []
    floor = load.get("poll_floor") or 0
    shed = f"no point polled more often than every {floor * 1000:.0f} ms" if floor else "back at the configured rates, settling"
    return [
        finding(
            DEGRADED,
            "load",
            "gateway",
            f"overloaded (load {100 * (load.get('load') or 0):.0f}%, timers {load.get('lag_ms', 0):.0f} ms late): {shed}; "
            f"{load.get('polls_skipped', 0)} polls skipped so that readings keep being delivered",
            "the configured polling is more than this gateway's CPU can do: lengthen poll intervals (fast points first) or move devices to another gateway",
        )
    ]


def inference_ms(cam: dict[str, Any]) -> Any:
    return (cam.get("stage_ms") or {}).get("detect", cam.get("inference_ms"))


def _camera(name: str, cam: dict[str, Any]) -> dict[str, str]:
    err = cam.get("error") or cam.get("last_error")
    fps = cam.get("fps")
    if cam.get("finished"):
        return finding(OK, "camera", name, "video file finished")
    summary = f"{fps if fps is not None else '?'} fps, {cam.get('frames_analysed', 0)} frames analysed, detect {inference_ms(cam) or '-'} ms, model {cam.get('model') or '-'}"
    if err and not fps:
        if "model" in err.lower():
            return finding(
                BROKEN,
                "camera",
                name,
                f"not analysing: {err}",
                "the model files are missing or broken: check edge_models/<model>/ (model.onnx and manifest.toml) and [vision] models_dir; see docs/vision-models.md",
            )
        return finding(
            BROKEN,
            "camera",
            name,
            f"no frames: {err}",
            "check the camera's power, cable or stream URL; `edge-agent diag camera snapshot` shows what the agent sees",
        )
    if err:
        return finding(DEGRADED, "camera", name, f"{summary}; {err}", "see the camera's last error")
    refs = cam.get("reference_errors") or cam.get("bin_errors") or {}
    if refs:
        bin_name, why = sorted(refs.items())[0]
        more = f" (+{len(refs) - 1} more bins)" if len(refs) > 1 else ""
        return finding(
            DEGRADED,
            "camera",
            name,
            f"{summary}; bin {bin_name}: {why}{more}",
            f"record the bin references: `edge-agent diag camera reference {name} {bin_name} empty` (and `full`)",
        )
    missed, done = cam.get("slots_missed") or 0, cam.get("frames_analysed") or 0
    if missed and missed > 0.2 * max(done, 1):
        return finding(
            DEGRADED, "camera", name, f"{summary}; {missed} analysis slots missed", "the gateway cannot keep up: lower detect_fps or use a smaller model"
        )
    return finding(OK, "camera", name, summary)


def _system(sysf: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    temp = sysf.get("cpu_temperature")
    if temp is not None:
        if temp >= TEMP_BROKEN:
            out.append(finding(BROKEN, "system", "cpu", f"CPU at {temp:.0f} C: throttling", "check the cabinet's ventilation and the heat sink"))
        elif temp >= TEMP_WARN:
            out.append(finding(DEGRADED, "system", "cpu", f"CPU at {temp:.0f} C", "check the cabinet's ventilation"))
    total, free = sysf.get("disk_total"), sysf.get("disk_free")
    if total:
        share = free / total
        level = BROKEN if share < DISK_BROKEN else DEGRADED if share < DISK_WARN else OK
        hint = "" if level == OK else "free space on the data partition (old logs, core dumps); the outbox drops the oldest readings at its cap"
        out.append(finding(level, "system", "disk", f"{free / 1e9:.1f} GB free of {total / 1e9:.1f} GB ({share:.0%})", hint))
    elif sysf.get("disk_error"):
        out.append(finding(BROKEN, "system", "disk", sysf["disk_error"], "check that the data_dir exists and is mounted"))
    mt, ma = sysf.get("memory_total"), sysf.get("memory_available")
    if mt and ma is not None and ma / mt < 0.05:
        out.append(
            finding(
                DEGRADED,
                "system",
                "memory",
                f"only {ma / 1e6:.0f} MB of {mt / 1e6:.0f} MB available",
                "a camera or a large outbox backlog uses too much memory; see `diag status --json`",
            )
        )
    return out
