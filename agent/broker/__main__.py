"""`python -m agent.broker --port N`: run the embedded broker on its own."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from agent.broker.server import DEFAULT_MAX_PACKET_SIZE, EmbeddedBroker


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m agent.broker",
        description="Embedded MQTT 3.1.1/5 broker for the demo and small sites (no authentication: keep it on loopback).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=1883, help="TCP port, 0 = any free port (default 1883)")
    parser.add_argument(
        "--max-packet-size", type=int, default=DEFAULT_MAX_PACKET_SIZE, help=f"largest accepted packet in bytes (default {DEFAULT_MAX_PACKET_SIZE})"
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> int:
    broker = EmbeddedBroker(args.host, args.port, max_packet_size=args.max_packet_size)
    try:
        port = await broker.start()
    except OSError as exc:
        print(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}. Choose another port with --port, or stop the program using it.", file=sys.stderr
        )
        return 2
    print(f"embedded MQTT broker listening on {args.host}:{port} (Ctrl-C to stop)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await broker.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(message)s")
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
