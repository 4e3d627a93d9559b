"""Throughput of the embedded broker relative to Mosquitto, same clients, one run.

    .venv/bin/python -m bench.bench_embedded_broker [--messages 20000]

One paho-mqtt publisher sends N QoS 1 messages to one paho subscriber through
each broker in turn (each broker in its own process). Reported per broker:
messages per second end to end, and the broker process's CPU time per message
(from /proc). Compare the ratios embedded/Mosquitto: the absolute numbers
mostly measure paho and the machine's load. Every run also checks that all N
messages arrived in order.
"""

from __future__ import annotations

import argparse
import os
import queue
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from hil_tests.broker import MosquittoBroker


def one_run(port: int, proto: int, n: int, inflight: int) -> tuple[float, int, bool]:
    """(messages per second, messages received, in order)."""
    got: queue.Queue[bytes] = queue.Queue()
    ready: queue.Queue[object] = queue.Queue()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=proto)
    sub.on_message = lambda c, u, m: got.put(m.payload)
    sub.on_subscribe = lambda c, u, mid, rcs, p: ready.put(rcs)
    sub.connect("127.0.0.1", port)
    sub.loop_start()
    sub.subscribe("bench/#", 1)
    ready.get(timeout=10)
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=proto)
    pub.max_inflight_messages_set(inflight)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    start = time.perf_counter()
    for i in range(n):
        pub.publish("bench/readings", str(i).encode(), qos=1)
    received = []
    try:
        for _ in range(n):
            received.append(got.get(timeout=15))
    except queue.Empty:
        pass
    elapsed = time.perf_counter() - start
    for c in (pub, sub):
        c.disconnect()
        c.loop_stop()
    in_order = received == [str(i).encode() for i in range(len(received))]
    return len(received) / elapsed, len(received), in_order


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(pid: int, port: int, proto: int, n: int, inflight: int) -> tuple[float, float, int, bool]:
    """(msg/s, broker CPU microseconds per message, received, in order)."""
    before = cpu_seconds(pid)
    rate, received, in_order = one_run(port, proto, n, inflight)
    return rate, (cpu_seconds(pid) - before) * 1e6 / max(received, 1), received, in_order


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--inflight", type=int, default=200)
    args = parser.parse_args()

    embedded = subprocess.Popen(
        [sys.executable, "-m", "agent.broker", "--port", "0", "--log-level", "WARNING"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(embedded.stdout.readline().split("127.0.0.1:")[1].split()[0])
        with tempfile.TemporaryDirectory() as tmp:
            # Unlimited queue so Mosquitto does not drop for a briefly slow subscriber.
            with MosquittoBroker(Path(tmp), extra_config="max_queued_messages 0") as mosq:
                print(f"{args.messages} QoS 1 messages, publisher in-flight window {args.inflight}, load average {os.getloadavg()[0]:.1f}")
                for name, proto in (("3.1.1", mqtt.MQTTv311), ("5", mqtt.MQTTv5)):
                    e = measured(embedded.pid, port, proto, args.messages, args.inflight)
                    m = measured(mosq.pid, mosq.port, proto, args.messages, args.inflight)
                    for label, r in (("embedded", e), ("mosquitto", m)):
                        print(f"MQTT {name} {label:9}: {r[0]:7.0f} msg/s, broker CPU {r[1]:6.1f} us/msg, {r[2]} received, in order: {r[3]}")
                    print(f"MQTT {name} ratio embedded/mosquitto: throughput {e[0] / m[0]:.2f}, broker CPU per message {e[1] / m[1]:.1f}x")
    finally:
        embedded.terminate()
        embedded.wait(10)


if __name__ == "__main__":
    main()
