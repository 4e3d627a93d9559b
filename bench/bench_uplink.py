"""Drain to a real Mosquitto on loopback, reading-to-hub latency, CPU, agent RSS.

    .venv/bin/python -m bench.bench_uplink [--readings 200000] [--seconds 10]

1. Drain: an outbox pre-filled with N readings (10 devices) is drained by the
   uplink to Mosquitto; the clock stops when the last PUBACK has been turned
   into a delete. Target >= 20,000 readings/s.
2. Latency: while online, a producer adds 2,000 readings/s for `--seconds`;
   the reference hub (`edge-agent hub listen`, its own process, validating
   every message) stores receive time next to reading time. Target p99 < 0.5 s.
3. RSS: the real agent (`edge-agent run`, one `system` device polled every
   10 ms, no vision) runs against the same broker for `--seconds`; VmRSS and
   VmHWM are read from /proc. Target <= 40 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agent.outbox import Outbox
from agent.outbox.config import StorageConfig
from agent.runtime.clock import Clock
from agent.uplink import Uplink
from agent.uplink.config import UplinkConfig
from hil_tests.agent_process import AgentProcess
from hil_tests.broker import MosquittoBroker

LOG = logging.getLogger("bench")
REPO = Path(__file__).resolve().parents[1]


def make(directory: str, port: int) -> tuple[Outbox, Uplink, Clock]:
    clock = Clock("assume")
    ob = Outbox(StorageConfig(), data_dir=directory, clock=clock, log=LOG)
    up = Uplink(
        UplinkConfig(broker="external", health_interval=3600),
        gateway_id="gw-bench",
        site="lab",
        outbox=ob,
        clock=clock,
        log=LOG,
        host="127.0.0.1",
        port=port,
        describe=dict,
        status=dict,
    )
    return ob, up, clock


async def drain(n: int, directory: str, port: int) -> dict[str, float]:
    ob, up, clock = make(directory, port)
    await ob.open()
    for c in range(n // 1000):
        ob.add([clock.reading(f"meter-{(c + k) % 10}", "active_power", float(k), "W") for k in range(1000)])
        if c % 20 == 19:
            await ob.flush()
    await ob.flush()
    runner = asyncio.create_task(ob.run())
    cpu0, t0 = time.process_time(), time.perf_counter()
    uplink = asyncio.create_task(up.run())
    while ob.stats()["depth"] > 0:
        await asyncio.sleep(0.005)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    stats = up.stats()
    await up.close()
    for t in (runner, uplink):
        t.cancel()
    await ob.close()
    return {"rate": n / elapsed, "elapsed": elapsed, "cpu_per_1000_ms": cpu / n * 1e6, "messages": stats["messages"], "sent": stats["sent"]}


async def latency(seconds: float, rate: int, directory: str, port: int, hub_db: str) -> dict[str, float]:
    ob, up, clock = make(directory, port)
    await ob.open()
    tasks = [asyncio.create_task(ob.run()), asyncio.create_task(up.run())]
    while not up.stats()["connected"]:
        await asyncio.sleep(0.01)
    per_tick = rate // 100
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        ob.add([clock.reading(f"meter-{k % 10}", "active_power", float(n + k), "W") for k in range(per_tick)])
        n += per_tick
        await asyncio.sleep(0.01)
    while ob.stats()["depth"] or ob.stats()["pending"]:
        await asyncio.sleep(0.01)
    await up.close()
    for t in tasks:
        t.cancel()
    await ob.close()
    deadline = time.monotonic() + 30
    rows: list[tuple[float]] = []
    while time.monotonic() < deadline:
        conn = sqlite3.connect(hub_db, timeout=5)
        rows = conn.execute("SELECT received - ts FROM readings WHERE gateway='gw-bench'").fetchall()
        conn.close()
        if len(rows) >= n:
            break
        await asyncio.sleep(0.2)
    lat = sorted(r[0] for r in rows)
    return {
        "n": len(lat),
        "produced": n,
        "p50": lat[len(lat) // 2],
        "p99": lat[int(len(lat) * 0.99)],
        "max": lat[-1],
        "mean": statistics.fmean(lat),
    }


def agent_rss(seconds: float, directory: str, port: int) -> dict[str, float]:
    cfg = Path(directory) / "gw.toml"
    cfg.write_text(
        f'[gateway]\nid = "gw-rss"\nsite = "lab"\ndata_dir = "{directory}/data"\n[clock]\nsync_source = "assume"\n'
        f'[uplink]\nbroker = "external"\nport = {port}\n[[devices]]\nname = "sys"\ndriver = "system"\npoll_interval = 0.01\n'
    )
    agent = AgentProcess(cfg, log_file=Path(directory) / "agent-rss.log")
    started = time.monotonic()
    try:
        agent.start()
        time.sleep(max(0.0, seconds - (time.monotonic() - started)))  # VmRSS `seconds` after the start (the documented measure), not after READY
        status = Path(f"/proc/{agent.pid}/status").read_text()
        fields = {line.split(":")[0]: int(line.split()[1]) for line in status.splitlines() if line.startswith(("VmRSS", "VmHWM"))}
    finally:
        agent.stop(15)
    return {"rss_mb": fields["VmRSS"] / 1024, "hwm_mb": fields["VmHWM"] / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readings", type=int, default=200_000)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d, MosquittoBroker(Path(d) / "broker") as broker:
        print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f}")
        dr = asyncio.run(drain(args.readings, d + "/drain", broker.port))
        print("| readings | seconds | drain readings/s | ratio to 20,000/s target | MQTT messages | CPU per 1,000 readings (fetch, encode, publish, delete) |")
        print("|---|---|---|---|---|---|")
        print(
            f"| {args.readings:,} | {dr['elapsed']:.2f} | {dr['rate']:,.0f} | {dr['rate'] / 20_000:.2f}x | {dr['messages']:.0f} | {dr['cpu_per_1000_ms']:.1f} ms |"
        )
        hub_db = d + "/hub.db"
        hub = subprocess.Popen(
            [sys.executable, "-m", "agent.cli.main", "hub", "listen", "--port", str(broker.port), "--db", hub_db, "--quiet", "--session-expiry", "0"],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
        )
        while not Path(hub_db).exists():
            time.sleep(0.05)
        time.sleep(0.5)
        la = asyncio.run(latency(args.seconds, 2000, d + "/lat", broker.port, hub_db))
        hub.terminate()
        hub.wait(15)
        print()
        print("| readings at 2,000/s | p50 | p99 | max | mean |")
        print("|---|---|---|---|---|")
        print(
            f"| {la['n']:,} of {la['produced']:,} | {la['p50'] * 1000:.0f} ms | {la['p99'] * 1000:.0f} ms | {la['max'] * 1000:.0f} ms | {la['mean'] * 1000:.0f} ms |"
        )
        rss = agent_rss(args.seconds, d, broker.port)
        print()
        print(
            f"agent RSS (edge-agent run, system device every 10 ms, no vision) after {args.seconds:.0f} s: {rss['rss_mb']:.1f} MB (peak {rss['hwm_mb']:.1f} MB)"
        )


if __name__ == "__main__":
    main()
