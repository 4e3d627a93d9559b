"""The gateway config, validated by the agent's own loader before anything is written.

Also decides where the credentials go: exactly where [uplink.tls] says, which
must be inside /etc/edge-agent/tls (the owner-only directory set-up creates).
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

from .errors import FlashError

TLS_DIR = "/etc/edge-agent/tls"
DEFAULT_TLS = {"ca_file": f"{TLS_DIR}/ca.pem", "cert_file": f"{TLS_DIR}/gateway.pem", "key_file": f"{TLS_DIR}/gateway.key"}


class GatewayConfig:
    def __init__(self, path: Path, text: bytes, model: Any) -> None:
        self.path = path
        self.text = text
        self.model = model
        self.gateway_id: str = model.gateway.id
        self.site: str = model.gateway.site
        self.warnings: list[str] = []
        tls = model.uplink.tls
        self.uses_tls = tls is not None
        self.tls_paths: dict[str, str] = {}
        for field, default in DEFAULT_TLS.items():
            configured = getattr(tls, field, "") if tls is not None else ""
            self.tls_paths[field] = configured or default
            if configured and posixpath.dirname(posixpath.normpath(configured)) != TLS_DIR:
                raise FlashError(
                    f"{path}: [uplink.tls] {field} = {configured!r} is outside {TLS_DIR}",
                    f"credentials are installed owner-only in {TLS_DIR}; set {field} = {default!r}",
                )
        if tls is None:
            self.warnings.append(f"the config has no [uplink.tls]: the gateway's certificate is installed in {TLS_DIR} but the agent will not use it")
        self.hub_ca_wanted = tls is not None and bool(tls.ca_file)
        if model.uplink.password_file:
            self.warnings.append(
                f"[uplink] password_file = {model.uplink.password_file!r} is not carried by the "
                "card; install it on the gateway or use certificate authentication"
            )

    def tls_name(self, field: str) -> str:
        return posixpath.basename(self.tls_paths[field])


def load_gateway_config(path: str) -> GatewayConfig:
    from agent.config.errors import ConfigError
    from agent.config.loader import load_config

    file = Path(path)
    try:
        model = load_config(file)
    except ConfigError as exc:
        raise FlashError(
            f"the gateway config is invalid; nothing was written.\n{exc.render()}", f"fix {file} (check it with `edge-agent config check {file}`) and run again"
        ) from exc
    return GatewayConfig(file, file.read_bytes(), model)
