"""Outbox ingest: readings committed to the SQLite WAL outbox per second, and CPU per 1,000.

    .venv/bin/python -m bench.bench_outbox [--readings 300000]

The outbox runs as in the agent (run() commits every 100 ms on its worker
thread, WAL synced every second) while a producer on the event loop adds
readings in chunks of 1,000 as fast as it can. The clock stops when the last
reading is committed. Readings are stamped before the clock starts: stamping
is the drivers' cost, not the outbox's. Target: >= 50,000 readings/s.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import tempfile
import time

from agent.outbox import Outbox
from agent.outbox.config import StorageConfig
from agent.runtime.clock import Clock

TARGET = 50_000


async def ingest(n: int, directory: str) -> dict[str, float]:
    clock = Clock("assume")
    ob = Outbox(StorageConfig(), data_dir=directory, clock=clock, log=logging.getLogger("bench"))
    await ob.open()
    devices = [f"meter-{i}" for i in range(10)]
    chunks = [[clock.reading(devices[(c + k) % 10], "active_power", float(k), "W") for k in range(1000)] for c in range(n // 1000)]
    runner = asyncio.create_task(ob.run())
    cpu0, t0 = time.process_time(), time.perf_counter()
    for chunk in chunks:
        ob.add(chunk)
        await asyncio.sleep(0)
        while len(ob._pending) > 50_000:  # a producer faster than the disk: wait instead of hitting the 100,000 memory bound
            await asyncio.sleep(0.005)
    while ob.committed + ob.stats()["dropped"] < n:
        await asyncio.sleep(0.002)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    runner.cancel()
    await ob.close()
    # after close: the write-ahead log has been checkpointed into the database file
    size = sum(os.path.getsize(p) for p in (ob.path, ob.path + "-wal") if os.path.exists(p))
    return {"rate": n / elapsed, "elapsed": elapsed, "cpu_per_1000_ms": cpu / n * 1e6, "bytes_per_reading": size / n, "dropped": ob.stats()["dropped"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readings", type=int, default=300_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        r = asyncio.run(ingest(args.readings, d))
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f}")
    print("| readings | seconds | ingest readings/s | ratio to 50,000/s target | CPU per 1,000 readings | bytes on disk per reading | dropped |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {args.readings:,} | {r['elapsed']:.2f} | {r['rate']:,.0f} | {r['rate'] / TARGET:.2f}x | {r['cpu_per_1000_ms']:.1f} ms | {r['bytes_per_reading']:.0f} | {r['dropped']:.0f} |"
    )


if __name__ == "__main__":
    main()
