"""The `edge-agent` command.

Each command group lives in its own module with `register(subparsers)`; the
module's handler returns the process exit code. Heavy imports happen inside
handlers, so `edge-agent --help` and `config check` stay fast on a Pi.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from agent import __version__

COMMAND_MODULES = [
    "agent.cli.run",
    "agent.cli.config_cmd",
    "agent.cli.demo",
    "agent.cli.hub",
    "agent.cli.diag",
    "agent.cli.remote",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-agent",
        description="Edge-gateway agent: reads the city's sensors and cameras and delivers every reading to the hub.",
    )
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
