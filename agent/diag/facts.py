"""Cheap facts about the gateway for `diag status`: temperature, disk, memory, certificates.

Everything here reads /proc, /sys, statvfs or a small PEM file (cached by
mtime), so it is safe on the event loop; nothing shells out.
"""

from __future__ import annotations

import os
import time
from typing import Any

from drivers.system.health import cpu_temperature, memory

_cert_cache: dict[str, tuple[float, dict[str, Any]]] = {}


def system_facts(data_dir: str) -> dict[str, Any]:
    out: dict[str, Any] = {"cpu_temperature": cpu_temperature()}
    try:
        out["load_1m"] = round(os.getloadavg()[0], 2)
    except OSError:
        out["load_1m"] = None
    mem = memory()
    if "MemTotal" in mem and "MemAvailable" in mem:
        out["memory_total"] = mem["MemTotal"]
        out["memory_available"] = mem["MemAvailable"]
    try:
        st = os.statvfs(data_dir)
        out["disk_path"] = data_dir
        out["disk_total"] = st.f_blocks * st.f_frsize
        out["disk_free"] = st.f_bavail * st.f_frsize
    except OSError as exc:
        out["disk_error"] = f"{data_dir}: {exc.strerror}"
    return out


def certificate_facts(path: str) -> dict[str, Any]:
    """Subject, issuer and expiry of the first certificate in a PEM file."""
    try:
        mtime = os.stat(path).st_mtime
    except OSError as exc:
        return {"file": path, "error": f"cannot read: {exc.strerror}"}
    cached = _cert_cache.get(path)
    if cached and cached[0] == mtime:
        facts = dict(cached[1])
    else:
        facts = _parse_pem(path)
        _cert_cache[path] = (mtime, facts)
        facts = dict(facts)
    if "not_after" in facts:
        facts["days_left"] = round((facts["not_after"] - time.time()) / 86400, 1)
    return facts


def _parse_pem(path: str) -> dict[str, Any]:
    from cryptography import x509

    try:
        with open(path, "rb") as fh:
            data = fh.read(1 << 20)
        cert = x509.load_pem_x509_certificates(data)[0]
    except (OSError, ValueError, IndexError) as exc:
        return {"file": path, "error": f"not a PEM certificate: {exc}"}
    return describe_certificate(cert, file=path)


def describe_certificate(cert: Any, **extra: Any) -> dict[str, Any]:
    return {
        **extra,
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "not_before": cert.not_valid_before_utc.timestamp(),
        "not_after": cert.not_valid_after_utc.timestamp(),
        "serial": format(cert.serial_number, "x"),
    }


def uplink_certificates(uplink_config: Any) -> list[dict[str, Any]]:
    tls = getattr(uplink_config, "tls", None)
    if tls is None:
        return []
    out = []
    for role, path in (("ca", tls.ca_file), ("client", tls.cert_file)):
        if path:
            out.append({"role": role, **certificate_facts(path)})
    return out
