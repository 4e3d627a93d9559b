"""Throughput of the embedded broker relative to Mosquitto, same clients, one run.

    /tmp/venv/bin/python -m bench.bench_embedded_broker [--messages 20000]

One paho-mqtt publisher sends N QoS 1 messages to one paho subscriber through
each broker in turn; the figure that matters is the ratio embedded/Mosquitto,
because the absolute numbers mostly measure paho and the machine's load.
Every run also checks that all N messages arrived in order.
"""

from __future__ import annotations

import argparse
import asyncio
import queue
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from agent.broker import EmbeddedBroker
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--inflight", type=int, default=200)
    args = parser.parse_args()

    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    embedded = EmbeddedBroker()
    port = asyncio.run_coroutine_threadsafe(embedded.start(), loop).result(10)
    with tempfile.TemporaryDirectory() as tmp:
        # Unlimited queue so Mosquitto does not drop for a briefly slow subscriber.
        with MosquittoBroker(Path(tmp), extra_config="max_queued_messages 0") as mosq:
            print(f"{args.messages} QoS 1 messages, publisher in-flight window {args.inflight}")
            for name, proto in (("3.1.1", mqtt.MQTTv311), ("5", mqtt.MQTTv5)):
                e_rate, e_n, e_ok = one_run(port, proto, args.messages, args.inflight)
                m_rate, m_n, m_ok = one_run(mosq.port, proto, args.messages, args.inflight)
                print(
                    f"MQTT {name}: embedded {e_rate:8.0f} msg/s ({e_n} received, in order: {e_ok}); "
                    f"mosquitto {m_rate:8.0f} msg/s ({m_n} received, in order: {m_ok}); "
                    f"ratio {e_rate / m_rate:.2f}"
                )
    asyncio.run_coroutine_threadsafe(embedded.stop(), loop).result(10)


if __name__ == "__main__":
    main()
