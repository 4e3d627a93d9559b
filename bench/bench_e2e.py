"""End to end on one machine: Modbus TCP devices -> the real agent -> Mosquitto -> a hub subscriber.

20 Modbus TCP devices (each its own endpoint) of 50 points (25 uint16, 25
float32: 75 registers, one block read a poll) polled every 100 ms demand
10,000 readings/s. The emulators and the hub subscriber run in processes of
their own so the agent's CPU and RSS are its alone. For each rate the bench
reports readings produced (sequence numbers assigned), delivered to the hub
(distinct sequence numbers received), the outbox backlog at the start and end
of the window, the agent's CPU per 1,000 readings and its RSS, and what the
agent says of its load (overloaded, event-loop busy share, timer lag, poll
floor, polls skipped to shed load).

`--baseline DIR` runs an agent from another checkout of the repository (e.g.
`git archive <commit> | tar -x -C DIR`) at every rate too, alternating with
this one, so that two versions are compared under the same machine load.

    .venv/bin/python bench/bench_e2e.py                 # 10, 20, 40 and 80 Hz
    .venv/bin/python bench/bench_e2e.py --rates 10 --seconds 30
    .venv/bin/python bench/bench_e2e.py --rates 40,80 --baseline /tmp/e2e-base
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.diag.client import DiagClient  # noqa: E402
from hil_tests.agent_process import AgentNotReady, AgentProcess  # noqa: E402
from hil_tests.broker import MosquittoBroker  # noqa: E402
from hil_tests.emulators.modbus_fleet import F32, U16, fleet_devices_toml, start_fleet, write_profile  # noqa: E402

SUBSCRIBER = """
import json, sys, threading, time, signal
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
seqs = set()
msgs = 0
first = {{}}
def on_message(client, userdata, msg):
    global msgs
    if "/telemetry/" not in msg.topic:
        return
    msgs += 1
    now = time.time()
    for r in json.loads(msg.payload)["readings"]:
        seqs.add(r["seq"])
c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-hub", protocol=mqtt.MQTTv5)
c.on_message = on_message
c.on_connect = lambda cl, u, f, rc, p=None: cl.subscribe("city/#", qos=1)
c.connect("127.0.0.1", {port})
c.loop_start()
print("ready", flush=True)
for line in sys.stdin:
    if line.strip() == "count":
        print(json.dumps({{"distinct": len(seqs), "max": max(seqs) if seqs else 0, "msgs": msgs}}), flush=True)
    elif line.strip() == "quit":
        break
c.loop_stop()
"""


def write_config(path: Path, data: Path, profile: Path, ports: list[int], broker_port: int, interval: float) -> None:
    parts = [
        f'[gateway]\nid = "gw-bench"\nsite = "bench"\ndata_dir = "{data}"\nlog_level = "warning"\n',
        '[clock]\nsync_source = "assume"\n',
        f'[uplink]\nbroker = "external"\nhost = "127.0.0.1"\nport = {broker_port}\n',
    ]
    parts.append(fleet_devices_toml(ports, profile, interval, timeout=1.0, prefix="dev"))
    path.write_text("\n".join(parts))


def proc_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> tuple[float, float]:
    rss = hwm = 0.0
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024
    return rss, hwm


def agent_status(sock: str) -> dict:
    with DiagClient(sock, timeout=5) as client:
        return client.call("status")  # type: ignore[no-any-return]


def hub_count(sub: subprocess.Popen[str]) -> dict:
    assert sub.stdin and sub.stdout
    sub.stdin.write("count\n")
    sub.stdin.flush()
    return json.loads(sub.stdout.readline())


def run_rate(
    tmp: Path, rate: float, seconds: float, devices: int, broker: MosquittoBroker, profile: Path, agent_root: Path = ROOT, label: str = "this"
) -> dict:
    try:
        emu, ports = start_fleet(devices)
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    sub = subprocess.Popen([sys.executable, "-c", SUBSCRIBER.format(port=broker.port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert sub.stdout
    sub.stdout.readline()
    data = tmp / f"data-{label}-{rate:g}"
    cfg = tmp / f"gw-{label}-{rate:g}.toml"
    write_config(cfg, data, profile, ports, broker.port, 1.0 / rate)
    agent = AgentProcess(cfg, log_file=tmp / f"agent-{label}-{rate:g}.log", root=agent_root)
    sock = str(agent.diag_socket)
    try:
        try:
            agent.start(30)  # READY=1: devices, uplink and diag socket are up
        except AgentNotReady as exc:
            raise SystemExit(str(exc)) from None
        time.sleep(3)  # warm-up: connections open, first polls done
        others = {"emulators": emu.pid, "hub": sub.pid, "mosquitto": broker.pid}
        st0, hub0, cpu0, t0 = agent_status(sock), hub_count(sub), proc_cpu_seconds(agent.pid), time.monotonic()
        other0 = {k: proc_cpu_seconds(p) for k, p in others.items() if p}
        time.sleep(seconds)
        st1, hub1, cpu1, t1 = agent_status(sock), hub_count(sub), proc_cpu_seconds(agent.pid), time.monotonic()
        other_cpu = {k: round(100 * (proc_cpu_seconds(p) - other0[k]) / (t1 - t0), 1) for k, p in others.items() if p}
        rss, hwm = proc_rss_mb(agent.pid)
    finally:
        agent.stop(20)
        emu.kill()
        sub.stdin.write("quit\n")  # type: ignore[union-attr]
        sub.stdin.flush()  # type: ignore[union-attr]
        sub.wait(10)
    ob0, ob1 = st0["outbox"], st1["outbox"]
    load = st1.get("load") or {}
    elapsed = t1 - t0
    produced = ob1["next_seq"] - ob0["next_seq"]
    delivered = hub1["distinct"] - hub0["distinct"]
    demanded = devices * (U16 + F32) * rate * elapsed
    cpu = cpu1 - cpu0
    skipped0 = (st0.get("load") or {}).get("polls_skipped", 0)
    return {
        "agent": label,
        "rate_hz": rate,
        "demanded_per_s": round(demanded / elapsed),
        "produced_per_s": round(produced / elapsed),
        "delivered_per_s": round(delivered / elapsed),
        "delivered_share_of_demand": round(delivered / demanded, 3),
        "delivered_share_of_produced": round(delivered / max(produced, 1), 3),
        "backlog_start": ob0["depth"],
        "backlog_end": ob1["depth"],
        "agent_cpu_percent": round(100 * cpu / elapsed, 1),
        "agent_cpu_ms_per_1000_readings": round(1000 * cpu / max(produced, 1) * 1000, 1),
        "agent_rss_mb": round(rss, 1),
        "agent_rss_peak_mb": round(hwm, 1),
        "overloaded": load.get("overloaded"),
        "load": load.get("load"),
        "loop_busy": load.get("loop_busy"),
        "cpu": load.get("cpu"),
        "loop_lag_ms": load.get("lag_ms"),
        "poll_floor_s": load.get("poll_floor"),
        "point_reads_skipped_per_s": round((load.get("polls_skipped", 0) - skipped0) / elapsed) if load else None,
        "dropped": ob1["dropped"],
        "other_cpu_percent": other_cpu,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=20)
    ap.add_argument("--rates", default="10,20,40,80", help="poll rates in Hz (10 Hz = every 100 ms)")
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--baseline", type=Path, help="also run the agent of this checkout at every rate, alternating with this one")
    args = ap.parse_args()
    agents = [("this", ROOT)] + ([("baseline", args.baseline.resolve())] if args.baseline else [])
    results = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        profile = tmp / "bench50.toml"
        write_profile(profile)
        broker = MosquittoBroker(tmp / "mosquitto")
        broker.start()
        try:
            for i, rate in enumerate(float(r) for r in args.rates.split(",")):
                # alternate which agent goes first, so neither always gets the quieter minute
                for label, root in agents if i % 2 == 0 else agents[::-1]:
                    res = run_rate(tmp, rate, args.seconds, args.devices, broker, profile, root, label)
                    results.append(res)
                    print(json.dumps(res), flush=True)
                    behind = res["delivered_share_of_produced"] < 0.97 or res["backlog_end"] > res["backlog_start"] + res["demanded_per_s"]
                    if behind:
                        print(f"{label}: delivery falls behind production at {rate:g} Hz ({res['demanded_per_s']} readings/s demanded)", flush=True)
        finally:
            broker.stop()
    print(json.dumps({"results": results}, indent=2))


if __name__ == "__main__":
    main()
