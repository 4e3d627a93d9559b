"""`edge-agent run`: the service itself."""

from __future__ import annotations

from typing import Any

from agent.cli.common import add_config_arg, load_plain_or_exit


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="run the agent (what the systemd unit starts)")
    add_config_arg(p)
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="override [gateway] log_level")
    p.set_defaults(handler=handle)


def handle(args: Any) -> int:
    import logging

    from agent.runtime import loop
    from agent.runtime.app import Agent, StartupError
    from agent.runtime.logs import setup_logging

    config = load_plain_or_exit(args.config)
    setup_logging(args.log_level or config.gateway.log_level)
    agent = Agent(config, config_path=args.config)
    try:
        return loop.run(agent.run())  # asyncio.run on a loop that measures its own load
    except StartupError as exc:
        logging.getLogger("edge_agent").error("cannot start: %s", exc)
        return 1
