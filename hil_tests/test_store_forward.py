"""Store-and-forward against a real Mosquitto: outages, TLS, credentials, caps, garbage.

The gateway side (outbox + uplink) runs in-process on a real SQLite file; the
hub is the reference consumer with a persistent session, as a real hub would
have, so the broker queues for it while it is away. Broker persistence is on,
so a stopped broker keeps that session and the retained status.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from agent.hub.listener import HubListener
from agent.hub.store import HubStore
from agent.outbox import Outbox
from agent.outbox.config import StorageConfig
from agent.runtime.clock import Clock
from agent.uplink import Uplink
from agent.uplink.config import TlsConfig, UplinkConfig
from agent.uplink.paho_adapter import Subscriber

LOG = logging.getLogger("test.store_forward")
GW = "gw-1"


def persistent_broker(factory: Any, tmp_path: Path, **options: Any) -> Any:
    store = tmp_path / f"mosquitto-db-{uuid.uuid4().hex[:6]}"
    store.mkdir()
    return factory(extra_config=f"persistence true\npersistence_location {store}/\nmax_queued_messages 100000", **options)


class Hub:
    def __init__(self, broker: Any, tmp_path: Path, tls: TlsConfig | None = None) -> None:
        self.listener = HubListener(HubStore(str(tmp_path / f"hub-{uuid.uuid4().hex[:6]}.db")))
        self.sub = Subscriber(
            client_id="hub-" + uuid.uuid4().hex[:8], topics=self.listener.topics, on_message=self.listener.handle, tls=tls, session_expiry=600, log=LOG
        )
        self.sub.start(broker.host, broker.port)

    def wait_seqs(self, upto: int, timeout: float = 30.0) -> bool:
        return self.listener.wait_for(lambda: self.count() >= upto, timeout)

    def count(self) -> int:
        s = self.listener.store.summary()["gateways"].get(GW)
        return 0 if s is None else s["readings"] + s["events"]

    def stop(self) -> None:
        self.sub.stop()


class Gateway:
    """Outbox + uplink on one event loop, as the runtime composes them."""

    def __init__(self, tmp_path: Path, host: str, port: int, storage: dict[str, Any] | None = None, **uplink: Any) -> None:
        self.clock = Clock("assume")
        self.outbox = Outbox(StorageConfig(**{"commit_interval": 0.02, **(storage or {})}), data_dir=str(tmp_path / "gw"), clock=self.clock, log=LOG)
        cfg = UplinkConfig(**{"broker": "external", "reconnect_initial": 0.2, "reconnect_max": 0.5, "health_interval": 0.3, **uplink})
        self.uplink = Uplink(
            cfg,
            gateway_id=GW,
            site="north",
            outbox=self.outbox,
            clock=self.clock,
            log=LOG,
            host=host,
            port=port,
            describe=lambda: {"versions": {"agent": "test"}, "capabilities": ["telemetry", "health"], "devices": [{"name": "meter-1"}]},
            status=lambda: {"devices": {"meter-1": {"online": True}}},
        )
        self.produced = 0
        self.tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Gateway:
        await self.outbox.open()
        self.tasks = [asyncio.create_task(self.outbox.run()), asyncio.create_task(self.uplink.run())]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.uplink.close()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.outbox.close()

    def produce(self, n: int, devices: tuple[str, ...] = ("meter-1", "pm-1")) -> None:
        batch = []
        for i in range(n):
            dev = devices[i % len(devices)]
            batch.append(self.clock.reading(dev, "active_power", float(self.produced + i), "W"))
        self.produced += n
        self.outbox.add(batch)

    async def until(self, predicate: Any, timeout: float = 30.0) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True


def retained(broker: Any, topic: str, tls: TlsConfig | None = None) -> dict[str, Any] | None:
    got: list[bytes] = []
    ev = threading.Event()
    sub = Subscriber(client_id="peek-" + uuid.uuid4().hex[:6], topics=[topic], on_message=lambda t, p: (got.append(p), ev.set()), tls=tls, log=LOG)
    sub.start(broker.host, broker.port)
    ev.wait(5)
    sub.stop()
    return json.loads(got[-1]) if got else None


def test_every_reading_arrives_once_in_order_with_birth_health_and_offline_status(mosquitto_factory, tmp_path):
    broker = persistent_broker(mosquitto_factory, tmp_path)
    hub = Hub(broker, tmp_path)

    async def main() -> dict[str, Any]:
        async with Gateway(tmp_path, broker.host, broker.port) as gw:
            for _ in range(20):
                gw.produce(500)
                await asyncio.sleep(0.01)
            assert await gw.until(lambda: gw.uplink.stats()["sent"] >= 10_000)
            assert await gw.until(lambda: gw.outbox.stats()["depth"] == 0)
            # waited for on the loop: a blocking wait would stop the uplink from sending the health message
            assert await gw.until(lambda: hub.listener.store.latest(GW, "health") is not None)
            online = retained(broker, f"city/north/{GW}/status")
            return {"online": online, "uplink": gw.uplink.stats()}

    out = asyncio.run(main())
    assert hub.wait_seqs(10_000)
    hub.stop()
    store = hub.listener.store
    assert store.seqs(GW) == list(range(1, 10_001))
    assert store.gaps(GW) == [] and store.counters(GW).get("duplicates", 0) == 0
    values = [v for (v,) in store.conn.execute("SELECT value FROM readings WHERE gateway=? ORDER BY seq", (GW,))]
    assert values == [float(i) for i in range(10_000)]
    assert out["online"]["state"] == "online" and out["online"]["devices"] == [{"name": "meter-1"}] and "telemetry" in out["online"]["capabilities"]
    health = store.latest(GW, "health")
    assert {"depth", "oldest_unsent_age", "dropped", "degraded"} <= set(health["outbox"]) and health["devices"] == {"meter-1": {"online": True}}
    assert out["uplink"]["connected"] and out["uplink"]["inflight"] <= 16
    offline = retained(broker, f"city/north/{GW}/status")
    assert offline["state"] == "offline" and offline["reason"] == "shutdown"


def test_broker_stopped_and_restarted_loses_nothing(mosquitto_factory, tmp_path):
    broker = persistent_broker(mosquitto_factory, tmp_path)
    hub = Hub(broker, tmp_path)

    async def main() -> dict[str, Any]:
        async with Gateway(tmp_path, broker.host, broker.port) as gw:
            for _ in range(10):
                gw.produce(200)
                await asyncio.sleep(0.02)
            await asyncio.to_thread(broker.stop)
            assert await gw.until(lambda: not gw.uplink.stats()["connected"], 10)
            for _ in range(50):  # produced while the hub is unreachable
                gw.produce(200)
                await asyncio.sleep(0.02)
            waiting = gw.outbox.stats()["depth"]
            await asyncio.to_thread(broker.start)
            assert await gw.until(lambda: gw.outbox.stats()["depth"] == 0 and gw.outbox.stats()["pending"] == 0, 30)
            return {"waiting": waiting, "uplink": gw.uplink.stats(), "produced": gw.produced}

    out = asyncio.run(main())
    assert hub.wait_seqs(out["produced"])
    hub.stop()
    store = hub.listener.store
    assert out["waiting"] >= 5000  # the outage really held readings back
    assert out["uplink"]["reconnects"] >= 1
    assert store.seqs(GW) == list(range(1, out["produced"] + 1))
    assert store.gaps(GW) == []


def test_mutual_tls_delivers_and_reports_certificate_expiry(mosquitto_factory, tmp_path, test_ca):
    broker = persistent_broker(mosquitto_factory, tmp_path, tls=True, require_certificate=True)
    pair = test_ca.client_cert("gw-1")
    tls = TlsConfig(ca_file=str(broker.ca_file), cert_file=str(pair.cert), key_file=str(pair.key))
    hub = Hub(broker, tmp_path, tls=TlsConfig(ca_file=str(broker.ca_file), cert_file=str(broker.client_cert), key_file=str(broker.client_key)))

    async def main() -> dict[str, Any]:
        async with Gateway(tmp_path, "localhost", broker.port, tls=tls.model_dump()) as gw:
            gw.produce(300)
            assert await gw.until(lambda: gw.uplink.stats()["sent"] >= 300)
            return gw.uplink.stats()

    stats = asyncio.run(main())
    assert hub.wait_seqs(300)
    hub.stop()
    assert stats["tls"] and stats["cert_expiry"] and stats["server_cert_expiry"]
    assert hub.listener.store.seqs(GW) == list(range(1, 301))


def test_wrong_ca_and_missing_client_certificate_are_refused_with_a_hint(mosquitto_factory, tmp_path, test_ca):
    broker = mosquitto_factory(tls=True, require_certificate=True)
    rogue = test_ca.other_ca()
    cases = {
        "wrong_ca": TlsConfig(ca_file=str(rogue.ca_file)),
        "no_client_cert": TlsConfig(ca_file=str(broker.ca_file)),
    }
    errors = {}

    async def attempt(name: str, tls: TlsConfig) -> None:
        async with Gateway(tmp_path / name, "localhost", broker.port, tls=tls.model_dump()) as gw:
            gw.produce(5)
            assert await gw.until(lambda: gw.uplink.stats()["connect_failures"] >= 2, 20)
            errors[name] = gw.uplink.stats()
            assert gw.outbox.stats()["depth"] == 5  # nothing leaves without a session

    for name, tls in cases.items():
        asyncio.run(attempt(name, tls))
    assert "certificate" in errors["wrong_ca"]["last_error"] and "ca_file" in errors["wrong_ca"]["last_error"]
    assert errors["no_client_cert"]["last_error"].startswith(("tls", "network", "protocol"))
    assert not errors["no_client_cert"]["connected"]


def test_username_and_password_file(mosquitto_factory, tmp_path):
    broker = persistent_broker(mosquitto_factory, tmp_path, passwords={"gw-1": "s3cret-pw", "hub": "hub-pw"})
    good = tmp_path / "pw"
    good.write_text("s3cret-pw\n")
    bad = tmp_path / "bad"
    bad.write_text("guess\n")
    got: list[bytes] = []
    sub = Subscriber(client_id="hub-pw", topics=["city/#"], on_message=lambda t, p: got.append(p), username="hub", password="hub-pw", log=LOG)
    sub.start(broker.host, broker.port)

    async def run(pw: Path, sub_dir: str) -> dict[str, Any]:
        async with Gateway(tmp_path / sub_dir, broker.host, broker.port, username="gw-1", password_file=str(pw)) as gw:
            gw.produce(10)
            ok = await gw.until(lambda: gw.uplink.stats()["sent"] >= 10 or gw.uplink.stats()["connect_failures"] >= 2, 20)
            assert ok
            return gw.uplink.stats()

    refused = asyncio.run(run(bad, "gw-bad"))
    accepted = asyncio.run(run(good, "gw-good"))
    sub.stop()
    assert refused["sent"] == 0 and "credentials" in refused["last_error"]
    assert accepted["sent"] == 10


class V5RefusingProxy:
    """Stands in for a broker that only speaks MQTT 3.1.1: answers an MQTT 5
    CONNECT with 'unacceptable protocol version', forwards 3.1.1 sessions."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.refused = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            head = conn.recv(4096)
            # fixed header byte, remaining length (variable-length integer), "\x00\x04MQTT", protocol level
            i = 1
            while i < len(head) and head[i] & 0x80:
                i += 1
            level = head[i + 7] if len(head) > i + 7 else 0
            if level == 5:
                self.refused += 1
                conn.sendall(b"\x20\x02\x00\x01")
                conn.close()
                return
            up = socket.create_connection(("127.0.0.1", self.target))
            up.sendall(head)
        except OSError:
            conn.close()
            return
        conn.settimeout(None)

        def pump(a: socket.socket, b: socket.socket) -> None:
            try:
                while data := a.recv(65536):
                    b.sendall(data)
            except OSError:
                pass
            finally:
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=pump, args=(conn, up), daemon=True).start()
        threading.Thread(target=pump, args=(up, conn), daemon=True).start()

    def close(self) -> None:
        self.sock.close()


def test_falls_back_to_mqtt_311_when_the_broker_refuses_mqtt_5(mosquitto_factory, tmp_path):
    broker = persistent_broker(mosquitto_factory, tmp_path)
    proxy = V5RefusingProxy(broker.port)
    hub = Hub(broker, tmp_path)

    async def main() -> dict[str, Any]:
        async with Gateway(tmp_path, "127.0.0.1", proxy.port) as gw:
            gw.produce(100)
            assert await gw.until(lambda: gw.uplink.stats()["sent"] >= 100)
            return gw.uplink.stats()

    stats = asyncio.run(main())
    proxy.close()
    assert hub.wait_seqs(100)
    hub.stop()
    assert proxy.refused >= 1 and stats["protocol"] == "mqttv311"
    assert hub.listener.store.seqs(GW) == list(range(1, 101))


def test_garbage_on_the_command_and_hub_side_never_crashes_the_agent(mosquitto_factory, tmp_path):
    broker = persistent_broker(mosquitto_factory, tmp_path)
    hub = Hub(broker, tmp_path)
    handled: list[tuple[str, bytes]] = []

    def handler(topic: str, payload: bytes) -> None:
        handled.append((topic, payload))
        json.loads(payload)  # raises on garbage, like a careless command handler would

    garbage = [b"", b"\x00\xff\xfe" * 100, b"{not json", os.urandom(300_000), b'{"cmd": "reboot"}', "ünïcødé".encode()]
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect(broker.host, broker.port)
    pub.loop_start()

    async def main() -> dict[str, Any]:
        async with Gateway(tmp_path, broker.host, broker.port) as gw:
            gw.uplink.set_command_handler(handler)
            gw.produce(100)
            assert await gw.until(lambda: gw.uplink.stats()["sent"] >= 100)
            for i, payload in enumerate(garbage):
                for topic in (f"city/north/{GW}/cmd/x{i}", f"city/north/{GW}/cmd/a/b/c"):
                    pub.publish(topic, payload, qos=1).wait_for_publish(5)
                # garbage where the hub listens, as if another client misbehaved
                pub.publish(f"city/north/{GW}/telemetry/meter-1", payload, qos=1).wait_for_publish(5)
                pub.publish(f"city/north/{GW}/status", payload, qos=1).wait_for_publish(5)
            assert await gw.until(lambda: gw.uplink.stats()["commands"] >= 2 * len(garbage))
            gw.uplink.set_command_handler(lambda t, p: 1 / 0)
            pub.publish(f"city/north/{GW}/cmd/boom", b"x", qos=1).wait_for_publish(5)
            assert await gw.until(lambda: gw.uplink.stats()["command_errors"] >= 2 * (len(garbage) - 1) + 1)
            gw.produce(100)
            assert await gw.until(lambda: gw.uplink.stats()["sent"] >= 200)
            return gw.uplink.stats()

    stats = asyncio.run(main())
    pub.loop_stop()
    assert hub.wait_seqs(200)
    hub.stop()
    assert len(handled) == 2 * len(garbage)
    assert stats["connected"] and stats["reconnects"] == 0  # garbage did not even cost a reconnect
    assert hub.listener.store.seqs(GW) == list(range(1, 201))
    assert hub.listener.invalid >= 2 * len(garbage) - 1  # the one valid-looking JSON on status is still not a status


def _rss_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_cap_overflow_drops_the_oldest_reports_the_count_and_memory_stays_flat(mosquitto_factory, tmp_path):
    broker = persistent_broker(mosquitto_factory, tmp_path, start=False)
    broker.start()
    hub = Hub(broker, tmp_path)
    broker_port = broker.port
    broker.stop()  # the gateway starts during an outage

    async def main() -> dict[str, Any]:
        async with Gateway(tmp_path, "127.0.0.1", broker_port, storage={"max_bytes": 1024 * 1024, "memory_readings": 20_000}) as gw:
            rss = []
            for round_ in range(20):
                for _ in range(10):
                    gw.produce(1000)
                    await asyncio.sleep(0.005)
                await gw.until(lambda: gw.outbox.stats()["pending"] == 0, 10)
                if round_ in (4, 19):
                    rss.append(_rss_kb())
            await gw.outbox.flush()  # the cap is enforced right after each commit
            await gw.outbox.refresh()
            used = gw.outbox.stats()["bytes"]
            await asyncio.to_thread(broker.start)
            assert await gw.until(lambda: gw.outbox.stats()["depth"] == 0, 30)
            return {"rss": rss, "stats": gw.outbox.stats(), "used": used, "produced": gw.produced}

    out = asyncio.run(main())
    store = hub.listener.store
    assert hub.listener.wait_for(lambda: store.unexplained_gaps(GW) == [] and (store.seqs(GW) or [0])[-1] >= out["produced"], 30)
    hub.stop()
    assert out["used"] <= 1024 * 1024
    dropped = out["stats"]["dropped_by_reason"]["max_bytes"]
    assert dropped > 150_000  # 200,000 produced, about 10,000 fit in 1 MiB
    assert out["rss"][1] - out["rss"][0] < 16 * 1024  # kB: flat while 150,000 more readings went through
    seqs = store.seqs(GW)
    values = [v for (v,) in store.conn.execute("SELECT value FROM readings WHERE gateway=? ORDER BY seq", (GW,))]
    assert values[-1] == float(out["produced"] - 1)  # the newest survived
    assert len(values) < 20_000  # the oldest went
    events = [json.loads(d) for (d,) in store.conn.execute("SELECT data FROM events WHERE gateway=? AND kind='dropped'", (GW,))]
    assert events and max(e["span_count"] for e in events) == dropped
    # the hub never saw seq 1..: the newest drop event says where its data starts
    assert max(e["last_seq"] for e in events) + 1 >= seqs[0] and min(e["first_seq"] for e in events) == 1
    assert store.unexplained_gaps(GW) == []
    assert seqs[-1] >= out["produced"]


def test_a_publish_the_broker_refuses_keeps_the_readings_in_the_outbox(mosquitto_factory, tmp_path):
    # MQTT 5: a broker ACL that denies telemetry answers PUBACK "not authorized"; nothing may be deleted
    acl = f"user gw-1\ntopic readwrite city/north/{GW}/status\ntopic readwrite city/north/{GW}/health\ntopic read city/north/{GW}/cmd/#\n"
    pw = tmp_path / "pw"
    pw.write_text("pw-1\n")
    broker = mosquitto_factory(passwords={"gw-1": "pw-1"}, acl=acl)

    async def main() -> dict[str, Any]:
        async with Gateway(tmp_path, broker.host, broker.port, username="gw-1", password_file=str(pw), protocol="mqttv5") as gw:
            gw.produce(50)
            assert await gw.until(lambda: gw.uplink.stats()["rejected"] >= 50)
            return {"uplink": gw.uplink.stats(), "outbox": gw.outbox.stats()}

    out = asyncio.run(main())
    assert out["uplink"]["sent"] == 0 and out["outbox"]["depth"] == 50
