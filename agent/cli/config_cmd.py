"""`edge-agent config check|schema`."""

from __future__ import annotations

import json
import sys
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("config", help="check a gateway config or print its JSON Schema")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = csub.add_parser("check", help="validate config files; exit 0 when valid, 2 when not")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.add_argument("--json", action="store_true", help="machine-readable result")
    check.set_defaults(handler=handle_check)
    schema = csub.add_parser("schema", help="print the JSON Schema of the gateway config")
    schema.set_defaults(handler=handle_schema)


def handle_check(args: Any) -> int:
    from agent.config.errors import ConfigError
    from agent.config.loader import load_config

    worst = 0
    results = []
    for path in args.files:
        try:
            cfg = load_config(path)
        except ConfigError as exc:
            worst = 2
            results.append({"file": path, "valid": False, "errors": [i.as_dict() for i in exc.issues]})
            if not args.json:
                print(exc.render(), file=sys.stderr)
            continue
        results.append({"file": path, "valid": True})
        if not args.json:
            print(f"{path}: ok (gateway {cfg.gateway.id}, {len(cfg.buses)} bus(es), {len(cfg.devices)} device(s), {len(cfg.cameras)} camera(s))")
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    return worst


def handle_schema(args: Any) -> int:
    from agent.config.schema import json_schema

    print(json.dumps(json_schema(), indent=2, sort_keys=True))
    return 0
