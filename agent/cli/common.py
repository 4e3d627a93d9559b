"""Helpers shared by the CLI modules."""

from __future__ import annotations

import os
import sys
from typing import Any

DEFAULT_CONFIG = "/etc/edge-agent/gateway.toml"


def add_config_arg(parser: Any, *, required: bool = False) -> None:
    parser.add_argument(
        "--config",
        "-c",
        default=None if required else os.environ.get("EDGE_AGENT_CONFIG", DEFAULT_CONFIG),
        required=required,
        metavar="FILE",
        help=f"gateway config file (default: $EDGE_AGENT_CONFIG or {DEFAULT_CONFIG})",
    )


def load_plain_or_exit(path: str) -> Any:
    """Load a config validated in a child process (plain objects, no pydantic in
    the caller), or print the located errors and exit 2 (never a traceback)."""
    from agent.config.errors import ConfigError
    from agent.config.handoff import load_plain

    try:
        return load_plain(path)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        raise SystemExit(2) from None
    except RuntimeError as exc:
        print(f"cannot check the config: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
