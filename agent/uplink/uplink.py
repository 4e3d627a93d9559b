"""The MQTT session to the hub: birth and will, draining the outbox, health, commands.

Delivery rule: a reading leaves the outbox only when the broker acknowledged
(PUBACK) the QoS 1 message that carried it. After any reconnect the drain
starts again from the oldest unacknowledged reading, so a message whose PUBACK
was lost is sent twice; the hub drops the copy by (gateway, seq).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agent.outbox import Outbox
from agent.runtime.clock import Clock
from agent.uplink.backoff import ReconnectBackoff
from agent.uplink.paho_adapter import ConnectError, MqttSession, Will
from agent.uplink.payload import Topics, birth_payload, encode_batches, health_payload, status_payload

if TYPE_CHECKING:
    from agent.uplink.config import UplinkConfig

CommandHandler = Callable[[str, bytes], Any]


class Uplink:
    def __init__(
        self,
        config: UplinkConfig,
        *,
        gateway_id: str,
        site: str,
        outbox: Outbox,
        clock: Clock,
        log: logging.Logger,
        host: str,
        port: int,
        describe: Callable[[], dict[str, Any]],
        status: Callable[[], dict[str, Any]],
        backoff: ReconnectBackoff | None = None,
    ) -> None:
        self.config = config
        self.gateway_id = gateway_id
        self.site = site
        self.outbox = outbox
        self.clock = clock
        self.log = log
        self.host = host
        self.port = port or (8883 if config.tls else 1883)
        self.describe = describe
        self.status = status
        self.topics = Topics(config.topic_prefix, site, gateway_id)
        self.backoff = backoff or ReconnectBackoff(config.reconnect_initial, config.reconnect_max)
        self._protocol = "mqttv311" if config.protocol == "mqttv311" else "mqttv5"
        self._session: MqttSession | None = None
        self._closing = False
        self._closed_evt = asyncio.Event()
        self._lost = asyncio.Event()
        self._data = asyncio.Event()
        self._window = asyncio.Event()
        self._inflight: dict[int, list[int]] = {}
        self._control: dict[int, asyncio.Future[bool]] = {}
        self._cursor = 0
        self._handler: CommandHandler | None = None
        self._failing_since: float | None = None
        self._client_cert_expiry = _cert_expiry(config.tls.cert_file) if config.tls and config.tls.cert_file else None
        self.counters = {"connects": 0, "connect_failures": 0, "messages": 0, "sent": 0, "rejected": 0, "commands": 0, "command_errors": 0}
        self.last_ack_wall: float | None = None
        self.last_error: str | None = None
        self.server_cert_expiry: float | None = None
        outbox.on_commit(self._data.set)

    # -- public surface ---------------------------------------------------------

    def send_event(self, kind: str, data: dict[str, Any]) -> None:
        """A durable event to the hub: it goes through the outbox like a reading."""
        self.outbox.event(kind, data)

    def set_command_handler(self, cb: CommandHandler | None) -> None:
        self._handler = cb

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        """A QoS 1 message on the live session (command results, rebirth); False when offline. Not stored."""
        session = self._session
        if session is None or not session.connected:
            return False
        try:
            session.publish(topic, payload, qos=1, retain=retain)
        except ConnectionError:
            return False
        return True

    @property
    def connected(self) -> bool:
        session = self._session
        return bool(session and session.connected)

    def stats(self) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "broker": f"{self.host}:{self.port}",
            "protocol": self._protocol,
            "tls": self.config.tls is not None,
            "last_ack_wall": self.last_ack_wall,
            "reconnects": max(0, self.counters["connects"] - 1),
            "connect_failures": self.counters["connect_failures"],
            "inflight": len(self._inflight),
            "inflight_readings": sum(len(s) for s in self._inflight.values()),
            "sent": self.counters["sent"],
            "messages": self.counters["messages"],
            "rejected": self.counters["rejected"],
            "commands": self.counters["commands"],
            "command_errors": self.counters["command_errors"],
            "last_error": self.last_error,
            "cert_expiry": self._client_cert_expiry,
            "server_cert_expiry": self.server_cert_expiry,
        }

    async def run(self) -> None:
        while not self._closing:
            try:
                session = await self._connect()
            except ConnectError as exc:
                self._connect_failed(exc)
                await self._sleep(self.backoff.next_delay())
                continue
            started = time.monotonic()
            try:
                await self._serve(session)
            finally:
                self._session = None
                await session.close()
            if self._closing:
                break
            if time.monotonic() - started >= self.config.stable_after:
                self.backoff.reset()
            self.log.warning("connection to %s:%d lost; reconnecting", self.host, self.port)
            self._failing_since = time.monotonic()
            await self._sleep(self.backoff.next_delay())

    async def close(self) -> None:
        """Publish the offline status, wait briefly for its PUBACK, disconnect."""
        self._closing = True
        session = self._session
        if session is not None and session.connected:
            try:
                await asyncio.wait_for(self._publish_control(session, self.topics.status, self._status_payload("offline", "shutdown"), retain=True), 0.7)
            except (TimeoutError, ConnectionError):
                pass
        # only now wake run(), which ends the session: the offline status goes out first
        self._closed_evt.set()
        if session is not None:
            await session.close()

    # -- connecting -------------------------------------------------------------

    async def _connect(self) -> MqttSession:
        protocols = [self._protocol]
        if self.config.protocol == "auto" and self._protocol == "mqttv5":
            protocols.append("mqttv311")
        password = self._password()
        for i, proto in enumerate(protocols):
            session = MqttSession(
                client_id=self.config.client_id or self.gateway_id,
                protocol=proto,
                keepalive=self.config.keepalive,
                username=self.config.username,
                password=password,
                tls=self.config.tls,
                will=Will(self.topics.status, self._status_payload("offline", "connection lost"), qos=1, retain=True),
                inflight_max=self.config.inflight_max,
                on_publish=self._on_publish,
                on_message=self._on_message,
                on_disconnect=lambda reason: self._lost.set(),
                log=self.log,
            )
            try:
                await session.connect(self.host, self.port, self.config.connect_timeout)
            except ConnectError as exc:
                if exc.kind == "protocol" and i + 1 < len(protocols):
                    self.log.info("%s; trying MQTT 3.1.1", exc)
                    continue
                raise
            if proto != self._protocol:
                self.log.info("broker %s:%d speaks MQTT 3.1.1 only; staying with it", self.host, self.port)
            self._protocol = proto
            return session
        raise ConnectError("protocol", "no protocol left to try")  # not reached: the loop raises

    def _password(self) -> str | None:
        if not self.config.password_file:
            return None
        try:
            with open(self.config.password_file, encoding="utf-8") as fh:
                return fh.read().rstrip("\r\n")
        except OSError as exc:
            raise ConnectError("auth", f"cannot read uplink.password_file {self.config.password_file} ({exc.strerror}); create it with mode 0600") from exc

    def _connect_failed(self, exc: ConnectError) -> None:
        self.counters["connect_failures"] += 1
        text = f"{exc.kind}: {exc}"
        if self._failing_since is None or text != self.last_error:
            # once per distinct failure, not once per retry
            self.log.warning("cannot connect to the hub broker %s:%d: %s", self.host, self.port, exc)
        self.last_error = text
        if self._failing_since is None:
            self._failing_since = time.monotonic()

    async def _sleep(self, delay: float) -> None:
        try:
            await asyncio.wait_for(self._closed_evt.wait(), delay)
        except TimeoutError:
            pass

    # -- one connected session ----------------------------------------------------

    async def _serve(self, session: MqttSession) -> None:
        self._session = session
        self._lost.clear()
        self._inflight.clear()
        self._control.clear()
        self._cursor = 0  # resend everything not yet acknowledged
        self.counters["connects"] += 1
        if self._failing_since is not None:
            self.log.info("connected to %s:%d again (%s)", self.host, self.port, self._protocol)
        else:
            self.log.info("connected to %s:%d (%s)", self.host, self.port, self._protocol)
        self._failing_since = None
        self.last_error = None
        self.server_cert_expiry = session.server_cert_expiry()
        tasks = [asyncio.create_task(self._drain(session), name="uplink-drain"), asyncio.create_task(self._health(session), name="uplink-health")]
        try:
            session.subscribe(self.topics.commands, 1)
            await self._publish_control(session, self.topics.status, self._birth_payload(), retain=True, wait=False)
            waiters = [asyncio.create_task(self._lost.wait()), asyncio.create_task(self._closed_evt.wait())]
            done, _ = await asyncio.wait(tasks + waiters, return_when=asyncio.FIRST_COMPLETED)
            for w in waiters:
                w.cancel()
            for t in done:
                if t in tasks and not t.cancelled() and t.exception() is not None:
                    exc = t.exception()
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    if not isinstance(exc, ConnectionError):
                        self.log.error("uplink %s failed: %s", t.get_name(), self.last_error, exc_info=exc)
        except ConnectionError as exc:
            self.last_error = str(exc)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for fut in self._control.values():
                if not fut.done():
                    fut.set_result(False)
            self._window.set()

    async def _drain(self, session: MqttSession) -> None:
        cfg = self.config
        fetch_limit = min(20_000, max(cfg.batch_max_readings * 8, 100))
        ahead: asyncio.Future[list[Any]] | None = None
        try:
            while True:
                if ahead is None:
                    self._data.clear()
                    rows = await self.outbox.fetch(self._cursor, fetch_limit)
                else:
                    rows, ahead = await ahead, None
                if not rows:
                    try:
                        await asyncio.wait_for(self._data.wait(), 1.0)
                    except TimeoutError:
                        pass
                    continue
                self._cursor = rows[-1][0]
                if len(rows) == fetch_limit:
                    # a backlog: read the next rows on the outbox thread while these are encoded and sent
                    self._data.clear()
                    ahead = asyncio.ensure_future(self.outbox.fetch(self._cursor, fetch_limit))
                for msg in encode_batches(
                    rows, self.topics, gateway=self.gateway_id, site=self.site, max_readings=cfg.batch_max_readings, max_bytes=cfg.batch_max_bytes
                ):
                    while len(self._inflight) >= cfg.inflight_max:
                        self._window.clear()
                        await self._window.wait()
                    if not session.connected:
                        raise ConnectionError("session lost while draining")
                    mid = session.publish(msg.topic, msg.payload, qos=1)
                    self._inflight[mid] = msg.seqs
        finally:
            if ahead is not None:
                ahead.cancel()

    def _on_publish(self, mid: int, ok: bool, reason: str) -> None:
        seqs = self._inflight.pop(mid, None)
        if seqs is None:
            fut = self._control.pop(mid, None)
            if fut is not None and not fut.done():
                fut.set_result(ok)
            return
        self._window.set()
        if ok:
            self.outbox.ack(seqs)
            self.counters["sent"] += len(seqs)
            self.counters["messages"] += 1
            self.last_ack_wall = time.time()
        else:
            # MQTT 5 negative PUBACK (quota, not authorised): keep them, resend on the next session.
            if not self.counters["rejected"]:
                self.log.warning(
                    "broker rejected a telemetry message (%s); readings stay in the outbox. Check the broker's ACL for %s/#", reason, self.topics.base
                )
            self.counters["rejected"] += len(seqs)

    async def _publish_control(self, session: MqttSession, topic: str, payload: bytes, *, retain: bool = False, wait: bool = True) -> bool:
        mid = session.publish(topic, payload, qos=1, retain=retain)
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._control[mid] = fut
        if not wait:
            return True
        return await fut

    async def _health(self, session: MqttSession) -> None:
        while True:
            await asyncio.sleep(self.config.health_interval)
            await self.outbox.refresh()
            await self._publish_control(session, self.topics.health, self._health_payload(), wait=False)

    # -- payloads ---------------------------------------------------------------

    def _ident(self) -> dict[str, Any]:
        return {"gateway": self.gateway_id, "site": self.site, "boot": self.clock.boot_id}

    def _status_payload(self, state: str, reason: str) -> bytes:
        return status_payload(state, reason, **self._ident())

    def _birth_payload(self) -> bytes:
        try:
            info = dict(self.describe())
        except Exception as exc:  # noqa: BLE001 - a broken describe must not block the birth
            self.log.error("describe() failed: %s", exc)
            info = {"describe_error": str(exc)}
        return birth_payload(info, protocol=self._protocol, **self._ident())

    def _health_payload(self) -> bytes:
        try:
            status = dict(self.status())
        except Exception as exc:  # noqa: BLE001
            status = {"status_error": str(exc)}
        return health_payload(status, self.outbox.stats(), self.stats(), **self._ident())

    # -- commands ---------------------------------------------------------------

    def _on_message(self, topic: str, payload: bytes) -> None:
        self.counters["commands"] += 1
        handler = self._handler
        if handler is None:
            self.log.debug("command on %s ignored: no handler (remote commands disabled)", topic)
            return
        try:
            result = handler(topic, payload)
            if asyncio.iscoroutine(result):
                task = asyncio.ensure_future(result)
                task.add_done_callback(self._command_done)
        except Exception as exc:  # noqa: BLE001 - garbage from the hub side never takes the uplink down
            self._command_failed(topic, exc)

    def _command_done(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._command_failed("?", task.exception())  # type: ignore[arg-type]

    def _command_failed(self, topic: str, exc: BaseException) -> None:
        self.counters["command_errors"] += 1
        self.log.warning("command on %s failed: %s: %s", topic, type(exc).__name__, exc)


def _cert_expiry(path: str) -> float | None:
    try:
        from cryptography import x509

        with open(path, "rb") as fh:
            cert = x509.load_pem_x509_certificate(fh.read())
        return cert.not_valid_after_utc.timestamp()
    except (OSError, ValueError):
        return None
