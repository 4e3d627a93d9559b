"""`edge-agent hub listen | report`: the reference hub consumer.

`listen` subscribes to <prefix>/#, validates every message against the
telemetry schemas, drops duplicates by (gateway, seq), stores what it receives
in SQLite and prints it live; `report` summarises a stored hub database and
exits 1 when a gateway shows a gap it did not explain.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("hub", help="reference hub consumer: listen to gateways, dedup, report gaps")
    hub_sub = p.add_subparsers(dest="hub_command", metavar="SUBCOMMAND", required=True)

    listen = hub_sub.add_parser("listen", help="subscribe, validate, dedup, store and print what gateways send")
    listen.add_argument("--broker", metavar="HOST:PORT", default="", help="broker address; same as --host HOST --port PORT")
    listen.add_argument("--host", default="127.0.0.1", help="broker host (default 127.0.0.1)")
    listen.add_argument("--port", type=int, default=0, help="broker port (default 8883 with --ca-file, else 1883)")
    listen.add_argument("--prefix", default="city", help="topic prefix the gateways use (uplink.topic_prefix, default city)")
    listen.add_argument("--db", default="hub.db", help="SQLite file to store readings in (default ./hub.db)")
    listen.add_argument("--quiet", "-q", action="store_true", help="do not print every reading; only the summary at exit")
    listen.add_argument("--duration", type=float, default=0, help="stop after this many seconds (default: until Ctrl-C)")
    listen.add_argument(
        "--report-every", type=float, default=0, metavar="SECONDS", help="also print the per-gateway summary (counts, duplicates, gaps) every SECONDS"
    )
    listen.add_argument("--client-id", default="edge-hub-listener", help="MQTT client id")
    listen.add_argument(
        "--session-expiry",
        type=int,
        default=3600,
        help="seconds the broker keeps this listener's session and queues messages for it while it is away (0: clean session)",
    )
    listen.add_argument("--username", default="")
    listen.add_argument("--password-file", default="", help="file holding the MQTT password")
    listen.add_argument("--ca-file", default="", help="CA of the broker's certificate (enables TLS)")
    listen.add_argument("--cert-file", default="", help="client certificate for mutual TLS")
    listen.add_argument("--key-file", default="", help="client key for mutual TLS")
    listen.set_defaults(handler=handle_listen)

    report = hub_sub.add_parser("report", help="summarise a hub database: counts, duplicates dropped, gaps")
    report.add_argument("--db", default="hub.db")
    report.add_argument("--json", action="store_true", help="machine-readable output")
    report.set_defaults(handler=handle_report)


def handle_listen(args: Any) -> int:
    import logging

    from agent.hub.listener import HubListener
    from agent.hub.store import HubStore
    from agent.uplink.config import TlsConfig
    from agent.uplink.paho_adapter import ConnectError, Subscriber

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    tls = TlsConfig(ca_file=args.ca_file, cert_file=args.cert_file, key_file=args.key_file) if args.ca_file or args.cert_file else None
    password = None
    if args.password_file:
        try:
            with open(args.password_file, encoding="utf-8") as fh:
                password = fh.read().rstrip("\r\n")
        except OSError as exc:
            print(f"cannot read --password-file {args.password_file}: {exc.strerror}", file=sys.stderr)
            return 2
    if args.broker:
        host, _, port_text = args.broker.rpartition(":")
        if not host or not port_text.isdigit():
            print(f"--broker wants HOST:PORT, got {args.broker!r}", file=sys.stderr)
            return 2
        args.host, args.port = host.strip("[]"), int(port_text)
    port = args.port or (8883 if tls else 1883)
    store = HubStore(args.db)
    printer = None if args.quiet else _printer
    listener = HubListener(store, prefix=args.prefix, printer=printer)
    sub = Subscriber(
        client_id=args.client_id,
        topics=listener.topics,
        on_message=listener.handle,
        username=args.username,
        password=password,
        tls=tls,
        session_expiry=args.session_expiry,
        log=logging.getLogger("edge_agent.hub"),
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        sub.start(args.host, port)
    except ConnectError as exc:
        print(f"{exc}; is the broker running, and are --host/--port right?", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"cannot use the broker at {args.host}:{port}: {exc}", file=sys.stderr)
        return 1
    print(f"listening on {args.host}:{port} {args.prefix}/#, storing in {args.db} (Ctrl-C to stop)", flush=True)
    try:
        _wait(stop, args.duration, args.report_every, listener)
    except KeyboardInterrupt:
        pass
    finally:
        sub.stop()
    summary = listener.summary()
    _print_summary(summary)
    store.close()
    return 0


def _wait(stop: threading.Event, duration: float, every: float, listener: Any) -> None:
    import time

    deadline = time.monotonic() + duration if duration > 0 else None
    while not stop.is_set():
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return
        step = every or left  # None: wait for Ctrl-C or SIGTERM only
        if left is not None and step is not None and left < step:
            step = left
        if stop.wait(step) or step is None:
            return
        if every and (deadline is None or time.monotonic() < deadline):
            _print_summary(listener.summary())


def handle_report(args: Any) -> int:
    import os

    from agent.hub.store import HubStore

    if not os.path.exists(args.db):
        print(f"no hub database at {args.db}; run `edge-agent hub listen --db {args.db}` first", file=sys.stderr)
        return 2
    store = HubStore(args.db)
    summary = store.summary()
    store.close()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)
    return 1 if any(g["unexplained_gaps"] for g in summary["gateways"].values()) else 0


def _printer(line: str) -> None:
    print(line, flush=True)


def _print_summary(summary: dict[str, Any]) -> None:
    gws = summary["gateways"]
    print(f"{len(gws)} gateway(s); {summary['invalid']} invalid message(s)")
    for gw, s in gws.items():
        gaps = s["unexplained_gaps"]
        reported = len(s["gaps"]) - len(gaps)
        gap_text = "no gaps" if not gaps else "UNEXPLAINED GAPS " + ", ".join(f"{a}..{b}" for a, b in gaps[:10])
        print(
            f"  {gw}: {s['readings']} readings, {s['events']} events, seq {s['first_seq']}..{s['last_seq']}, "
            f"{s['duplicates']} duplicate(s) dropped, {gap_text}"
            + (f" ({reported} gap(s) reported by the gateway)" if reported else "")
            + f", {s['state'] or 'state unknown'}"
        )
