"""`edge-agent demo`: the agent's main job on emulated devices, with a live hub view."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import Any

DEMO_CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "config", "demo.toml")


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="run the agent on emulated devices with a live view of what the hub receives")
    p.add_argument("--config", default=os.path.normpath(DEMO_CONFIG), metavar="FILE", help="demo gateway config (default: config/demo.toml)")
    p.add_argument("--duration", type=float, default=0, help="stop after this many seconds (default: until Ctrl-C)")
    p.add_argument("--plain", action="store_true", help="print one line per reading instead of the live screen")
    p.set_defaults(handler=handle)


def handle(args: Any) -> int:
    from agent.cli.common import load_plain_or_exit

    config = load_plain_or_exit(args.config)
    try:
        import hil_tests.emulators  # noqa: F401
    except ImportError:
        print("the demo runs from a clone of the repository (it uses hil_tests/emulators): run ./tools/demo.sh there", file=sys.stderr)
        return 2
    return asyncio.run(_demo(args, config))


async def _demo(args: Any, config: Any) -> int:
    import logging

    from agent.demo.rig import DemoRig
    from agent.demo.view import HubView
    from agent.hub.listener import HubListener
    from agent.hub.store import HubStore
    from agent.uplink.paho_adapter import Subscriber

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    data_dir = config.gateway.data_dir
    os.makedirs(data_dir, exist_ok=True)
    busy = _busy_ports(config)
    if busy:
        print(
            f"demo: ports {', '.join(map(str, busy))} on 127.0.0.1 are in use: is another demo running? Stop it, or change the ports in {args.config}",
            file=sys.stderr,
        )
        return 2
    rig = DemoRig(config)
    await rig.start()
    agent_log = os.path.join(data_dir, "agent.log")
    log_fh = open(agent_log, "ab")  # noqa: SIM115 - lives as long as the agent process
    agent = subprocess.Popen(
        [sys.executable, "-m", "agent.cli.main", "run", "--config", args.config],
        stdout=log_fh,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches the demo only; it stops the agent with SIGTERM
        preexec_fn=_die_with_parent,
    )
    up = config.uplink
    host = "127.0.0.1" if up.broker == "embedded" else up.host
    port = up.port or 1883
    # The hub view starts empty each run; the agent's outbox persists, so
    # what an earlier run left unsent arrives first.
    hub_db = os.path.join(data_dir, "hub.db")
    for leftover in (hub_db, hub_db + "-wal", hub_db + "-shm"):
        if os.path.exists(leftover):
            os.unlink(leftover)
    store = HubStore(hub_db)
    listener = HubListener(store, prefix=up.topic_prefix)
    live = sys.stdout.isatty() and not args.plain
    view = HubView(listener, out=sys.stdout, live=live)
    sub = Subscriber(client_id="demo-hub-view", topics=listener.topics, on_message=view.handle, log=logging.getLogger("edge_agent.demo.hub"))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"demo: agent pid {agent.pid}, log {agent_log}; hub view on {host}:{port}", flush=True)
    for line in rig.summary:
        print(f"demo: {line}", flush=True)
    await _connect(sub, host, port, agent, stop)
    started = time.monotonic()
    code = 0
    try:
        while not stop.is_set():
            if agent.poll() is not None:
                print(f"demo: the agent exited with code {agent.returncode}; see {agent_log}", file=sys.stderr)
                code = 1
                break
            if args.duration and time.monotonic() - started >= args.duration:
                break
            header = [
                f"edge-agent demo: gateway {config.gateway.id}, agent pid {agent.pid}, up {time.monotonic() - started:.0f} s; Ctrl-C stops",
                f"broker {host}:{port} ({up.broker}); agent log {agent_log}",
                *[f"emulated: {s}" for s in rig.summary],
            ]
            view.render(header)
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except TimeoutError:
                pass
    finally:
        agent_code = _stop_agent(agent)
        sub.stop()
        await rig.stop()
        log_fh.close()
    summary = listener.summary()
    store.close()
    print(f"demo: agent stopped (exit code {agent_code}); the hub received {view.readings} readings from {len(view.devices_seen)} device(s):", flush=True)
    for gw, s in summary.get("gateways", {}).items():
        gaps = s.get("unexplained_gaps") or []
        print(f"demo:   {gw}: seq {s['first_seq']}..{s['last_seq']}, {s['duplicates']} duplicates dropped, {'no gaps' if not gaps else f'gaps {gaps[:5]}'}")
    print(f"demo:   devices: {', '.join(sorted(view.devices_seen)) or 'none'}", flush=True)
    return code or (0 if agent_code == 0 else 1)


async def _connect(sub: Any, host: str, port: int, agent: subprocess.Popen[bytes], stop: asyncio.Event) -> None:
    # The embedded broker starts inside the agent; wait for it to listen.
    deadline = time.monotonic() + 30
    while True:
        try:
            await asyncio.to_thread(sub.start, host, port)
            return
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            if time.monotonic() > deadline or agent.poll() is not None or stop.is_set():
                raise SystemExit(f"demo: cannot reach the broker at {host}:{port}: {exc}") from None
            await asyncio.sleep(0.2)


def _die_with_parent() -> None:
    # A demo killed outright (SIGKILL, closed terminal) must not leave its
    # agent behind holding the demo's ports: Linux sends it SIGTERM then.
    import ctypes

    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _busy_ports(config: Any) -> list[int]:
    import socket

    wanted = [b.port for b in config.buses if b.type == "modbus_tcp" and b.host in ("127.0.0.1", "localhost")]
    if config.uplink.broker == "embedded" and config.uplink.port:
        wanted.append(config.uplink.port)
    busy = []
    for port in wanted:
        with socket.socket() as s:
            # as the servers do: a port whose old connections linger in
            # TIME_WAIT after the previous run is free
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                busy.append(port)
    return busy


def _stop_agent(agent: subprocess.Popen[bytes]) -> int:
    if agent.poll() is None:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(15)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
    return agent.returncode
