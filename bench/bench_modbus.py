"""Modbus benchmark: block planning, RTU line utilisation, Modbus TCP throughput and CPU.

    PYTHONPATH=. python bench/bench_modbus.py            # print the results
    PYTHONPATH=. python bench/bench_modbus.py --write    # also update "## Modbus" in docs/benchmarks.md

1. Requests per poll for the shipped profiles, planned blocks vs one request per point.
2. RTU on a pty pair through the line-timing emulator (11 bits per character at
   the baud rate, 3.5-character gap, device turnaround): achieved transactions/s
   as a fraction of the limit computed from the frame sizes.
3. Modbus TCP on loopback (emulator in another process): block reads/s and the
   agent's CPU time per 1,000 points decoded and stamped.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import platform
import re
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from agent.runtime.clock import Clock  # noqa: E402
from drivers.base import DriverContext  # noqa: E402
from drivers.modbus.bus import ModbusRtuBus, ModbusTcpBus  # noqa: E402
from drivers.modbus.config import ModbusDeviceConfig, ModbusRtuBusConfig, ModbusTcpBusConfig  # noqa: E402
from drivers.modbus.driver import ModbusDriver  # noqa: E402
from drivers.modbus.planner import Planner  # noqa: E402
from drivers.modbus.points import load_profile  # noqa: E402
from hil_tests.emulators.modbus_devices import EmulatedDevice, profile_device  # noqa: E402
from hil_tests.emulators.modbus_servers import PtyRtuEmulator, TcpEmulator, free_port  # noqa: E402

PROFILES = ("eastron_sdm630", "eastron_sdm120", "xy_md02", "rs485_noise")
LOG = logging.getLogger("bench")


def planning_table() -> list[str]:
    rows = ["| profile | points | requests per poll (planned) | naive (one per point) |", "|---|---|---|---|"]
    for name in PROFILES:
        prof = load_profile(name)
        blocks = Planner(max_gap=prof.max_gap if prof.max_gap is not None else 8, max_registers=prof.max_registers or 125).plan(prof.points)
        rows.append(f"| {name} | {len(prof.points)} | {len(blocks)} | {len(prof.points)} |")
    return rows


def _driver(bus, unit: int, sink: list, **cfg) -> ModbusDriver:
    clock = Clock("assume")
    config = ModbusDeviceConfig(name=f"d{unit}", driver="modbus", bus="b", unit_id=unit, failure={"timeout": 1.0, "retries": 0}, **cfg)
    return ModbusDriver(config, bus, DriverContext(f"d{unit}", stamp=clock.reading, emit=sink.extend, log=LOG))


WIDE_POINTS = [{"name": f"p{i}", "table": "input", "address": 2 * i, "type": "float32"} for i in range(62)]  # one 124-register block


def _wide_device() -> EmulatedDevice:
    dev = EmulatedDevice(1)
    for p in WIDE_POINTS:
        dev.set_value("input", p["address"], float(p["address"]), "float32")
    return dev


def _serve_rtu(conn, baud: int, turnaround: float, wide: bool) -> None:  # runs in a child process, like a real device
    async def main() -> None:
        dev = _wide_device() if wide else profile_device("eastron_sdm630", 1)
        emu = PtyRtuEmulator([dev], baudrate=baud, turnaround=turnaround, timing=True)
        await emu.start()
        conn.send(emu.path)
        loop = asyncio.get_running_loop()
        while True:
            msg = await loop.run_in_executor(None, conn.recv)
            r = emu.responder
            conn.send((r.answered, r.ideal_time, r.gap_violations, r.late_time))
            if msg == "stop":
                await emu.stop()
                return

    logging.disable(logging.CRITICAL)
    asyncio.run(main())


async def rtu_run(baud: int, turnaround: float, transactions: int, naive: bool = False, wide: bool = False) -> dict:
    parent, child = multiprocessing.Pipe()
    proc = multiprocessing.Process(target=_serve_rtu, args=(child, baud, turnaround, wide), daemon=True)
    proc.start()
    try:
        if not parent.poll(60):
            raise RuntimeError("RTU emulator did not start")
        path = parent.recv()
        bus = ModbusRtuBus(ModbusRtuBusConfig(name="b", type="modbus_rtu", port=path, baudrate=baud), LOG)
        sink: list = []
        # naive: max_registers=2 makes every float32 its own request
        if wide:
            d = _driver(bus, 1, sink, points=WIDE_POINTS)
        else:
            d = _driver(bus, 1, sink, profile="eastron_sdm630", **({"max_registers": 2} if naive else {}))
        pts = list(d.points.values())
        await d.poll_points(pts)  # connect and warm up
        # The agent's own share: time from an answer's arrival to the next request.
        marks: list[tuple[bool, float]] = []
        record = bus.recorder.frame

        def mark(sending: bool, data: bytes) -> None:
            marks.append((sending, time.perf_counter()))
            record(sending, data)

        bus.recorder.frame = mark  # type: ignore[method-assign]
        if bus._client is not None:
            bus._client._on_frame = mark
        parent.send("stats")
        a0, ideal0, _, late0 = parent.recv()
        t0, cpu0 = time.perf_counter(), time.process_time()
        req0 = d.requests
        polls = 0
        durations = []
        while d.requests - req0 < transactions:
            p0 = time.perf_counter()
            readings, ok = await d.poll_points(pts)
            durations.append(time.perf_counter() - p0)
            assert ok and all(x.status == "ok" for x in readings), readings[:2]
            polls += 1
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        parent.send("stop")
        a1, ideal1, violations, late1 = parent.recv()
        await bus.close()
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.terminate()
    n, ideal, late = a1 - a0, ideal1 - ideal0, late1 - late0
    return {
        "baud": baud,
        "tx": n,
        "tps": n / elapsed,
        "limit_tps": n / ideal,
        "fraction": ideal / elapsed,
        "late_ms": late * 1000 / n,
        "agent_fraction": ideal / (elapsed - late),
        "poll_s": elapsed / polls,
        "turn_ms": 1000 * statistics.median(b[1] - a[1] for a, b in zip(marks, marks[1:], strict=False) if not a[0] and b[0]),
        "median_fraction": (ideal / polls) / statistics.median(durations),
        "gap_violations": violations,
        "gap_ms": bus.gap * 1000,
        "cpu_ms": cpu * 1000 / (d.requests - req0),
        "blocks": len(d.planner.plan(pts)),
    }


def _serve_tcp(port: int, points: int, ready) -> None:  # runs in a child process
    async def main() -> None:
        dev = EmulatedDevice(1)
        for i in range(points):
            dev.set_value("holding", 2 * i, float(i), "float32")
        emu = TcpEmulator([dev], port=port, size=2 * points + 8)
        await emu.start()
        ready.set()
        await asyncio.sleep(3600)

    logging.disable(logging.CRITICAL)
    asyncio.run(main())


async def tcp_run(points: int, seconds: float) -> dict:
    port = free_port()
    ready = multiprocessing.Event()
    proc = multiprocessing.Process(target=_serve_tcp, args=(port, points, ready), daemon=True)
    proc.start()
    try:
        if not ready.wait(60):
            raise RuntimeError("TCP emulator did not start")
        bus = ModbusTcpBus(ModbusTcpBusConfig(name="b", type="modbus_tcp", host="127.0.0.1", port=port), LOG)
        sink: list = []
        d = _driver(bus, 1, sink, points=[{"name": f"p{i}", "address": 2 * i, "type": "float32"} for i in range(points)])
        pts = list(d.points.values())
        await d.poll_points(pts)
        req0, cpu0, t0 = d.requests, time.process_time(), time.perf_counter()
        polls = 0
        while time.perf_counter() - t0 < seconds:
            readings, ok = await d.poll_points(pts)
            assert ok and len(readings) == points
            polls += 1
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        reqs = d.requests - req0
        await bus.close()
    finally:
        proc.terminate()
        proc.join(10)
    return {
        "points": points,
        "reads_s": reqs / elapsed,
        "points_s": polls * points / elapsed,
        "cpu_ms_per_1000": cpu * 1000 / (polls * points / 1000),
        "reqs_per_poll": reqs / polls,
    }


async def run_all(quick: bool) -> list[str]:
    lines = ["Command: `PYTHONPATH=. python bench/bench_modbus.py --write`", ""]
    load = os.getloadavg()[0]
    lines.append(
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, load average {load:.1f} at start; one run, {time.strftime('%Y-%m-%d', time.gmtime())}."
    )
    lines += ["", "**Requests per poll** (block planner vs one request per point):", ""] + planning_table()
    lines += [
        "",
        "**RTU line utilisation** (SDM630 profile, 4 block reads per poll of 80, 6, 2 and 10 registers; pty pair to the line-timing emulator in a second process: 11 bits/char, 3.5-char gap, 1 ms turnaround). Limit = 1 / (frame bytes x 11 / baud + turnaround + gap) per transaction.",
        "",
    ]
    lines += [
        "| baud | transactions | achieved tx/s | limit tx/s | fraction of limit (mean) | fraction of limit (median poll) | emulator late per tx | time per SDM630 poll | agent CPU per tx | answer to next request (median; gap) | gap violations |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    turnaround = 0.001
    met: list[str] = []
    turn_notes: list[str] = []
    missed: list[str] = []
    naive_rows: list[str] = []
    wide_rows: list[str] = []
    for baud in (9600, 19200, 115200):
        n = 20 if quick else (60 if baud < 100000 else 300)
        r = await rtu_run(baud, turnaround, n)
        w = await rtu_run(baud, turnaround, n // 2, wide=True)
        wide_rows.append(
            f"| {baud} | {w['tx']} | {w['tps']:.1f} | {w['limit_tps']:.1f} | {w['fraction'] * 100:.1f} % | {w['median_fraction'] * 100:.1f} % | {w['late_ms']:.2f} ms | {w['cpu_ms']:.2f} ms | {w['gap_violations']} |"
        )
        turn_notes.append(f"{r['turn_ms'] - r['gap_ms']:.2f} ms at {baud}")
        (met if r["median_fraction"] >= 0.9 else missed).append(f"{baud} ({r['median_fraction'] * 100:.0f} %)")
        lines.append(
            f"| {baud} | {r['tx']} | {r['tps']:.1f} | {r['limit_tps']:.1f} | {r['fraction'] * 100:.1f} % | {r['median_fraction'] * 100:.1f} % | {r['late_ms']:.2f} ms | {r['poll_s'] * 1000:.0f} ms | {r['cpu_ms']:.2f} ms | {r['turn_ms']:.2f} ms ({r['gap_ms']:.2f}) | {r['gap_violations']} |"
        )
        nv = await rtu_run(baud, turnaround, 39 * (1 if quick else 2), naive=True)
        naive_rows.append(f"| {baud} | {r['poll_s'] * 1000:.0f} ms | {nv['poll_s'] * 1000:.0f} ms | {nv['poll_s'] / r['poll_s']:.1f}x |")
    lines += [
        "",
        f"Target >= 90 % of the line limit for the SDM630 poll (median poll, robust to stalls of the shared host): met at {', '.join(met) or 'no rate'}{'; not met at ' + ', '.join(missed) if missed else ' (every rate measured)'}. "
        "The gap is never violated. What is lost is a fixed few milliseconds per transaction: the agent's CPU per transaction (column) "
        "plus the host's scheduling delay at every wake-up; the emulator, on the same host, shows that delay in its own lateness column. "
        "The agent's own share beyond the gap (answer to next request minus gap, median) was "
        + ", ".join(turn_notes)
        + "; the rest of the shortfall is on the emulated device's side of the pty (two process wake-ups per transaction on this shared host). "
        "It weighs little against a 9600-baud frame (tens of ms) and a lot against the 1.6 ms of a 2-register answer at 115200 baud, "
        "so large blocks (table below) keep the fraction high. On an unloaded gateway the scheduling delay is far smaller; rerun there to size a line.",
    ]
    lines += [
        "",
        "Same line, one 124-register block per transaction (62 float32 values):",
        "",
        "| baud | transactions | achieved tx/s | limit tx/s | fraction of limit (mean) | fraction of limit (median tx) | emulator late per tx | agent CPU per tx | gap violations |",
        "|---|---|---|---|---|---|---|---|---|",
    ] + wide_rows
    lines += [
        "",
        "SDM630 poll time on the same emulated line, planned blocks vs one request per point:",
        "",
        "| baud | planned (4 requests) | naive (39 requests) | ratio |",
        "|---|---|---|---|",
    ] + naive_rows
    lines += [
        "",
        "**Modbus TCP loopback** (pymodbus server in a second process; float32 points in holding registers; CPU is the agent process only: request, decode, stamp Reading):",
        "",
    ]
    lines += ["| points | block reads/s | points/s | CPU per 1,000 points | requests per poll |", "|---|---|---|---|---|"]
    for points in (100, 1000):
        r = await tcp_run(points, 1.0 if quick else 4.0)
        lines.append(f"| {points} | {r['reads_s']:.0f} | {r['points_s']:.0f} | {r['cpu_ms_per_1000']:.1f} ms | {r['reqs_per_poll']:.0f} |")
    return lines


def write_section(lines: list[str], path: str) -> None:
    body = "## Modbus\n\n" + "\n".join(lines) + "\n"
    text = open(path, encoding="utf-8").read() if os.path.exists(path) else "# Benchmarks\n\n"
    pattern = re.compile(r"^## Modbus\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _m: body + "\n", text).rstrip("\n") + "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + body
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write", action="store_true", help="update the Modbus section of docs/benchmarks.md")
    ap.add_argument("--quick", action="store_true", help="fewer transactions (smoke run)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    lines = asyncio.run(run_all(args.quick))
    print("\n".join(lines))
    if args.write:
        write_section(lines, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "benchmarks.md"))


if __name__ == "__main__":
    main()
