"""The only module that touches paho-mqtt: one MQTT connection, bridged to asyncio.

paho runs its network loop on its own thread; every callback is wrapped so an
exception (a garbage message, a bug in a handler) can never kill that thread,
and is handed to the event loop with call_soon_threadsafe. One MqttSession is
one connection attempt: a new paho client each time, so nothing from a dead
session (queued or half-acknowledged messages) leaks into the next one; the
outbox, not paho, is what remembers unsent readings.

paho measures the keepalive on time.monotonic, so a wall-clock jump after NTP
sync cannot time the session out.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

if TYPE_CHECKING:
    from agent.uplink.config import TlsConfig


# CONNACK reason codes (MQTT 5 numbering; paho maps 3.1.1 return codes onto them)
_AUTH_CODES = {134, 135}  # bad user name or password, not authorized
_PROTOCOL_CODES = {1, 132}  # 3.1.1 "unacceptable protocol version", 5 "unsupported protocol version"


class ConnectError(Exception):
    """A failed connection attempt. `kind`: network, tls, auth, protocol, refused, timeout."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Will:
    __slots__ = ("topic", "payload", "qos", "retain")

    def __init__(self, topic: str, payload: bytes, qos: int = 1, retain: bool = True) -> None:
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain


def tls_context(tls: TlsConfig) -> ssl.SSLContext:
    """Verifying client context: the broker's certificate and host name are always checked."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls.ca_file or None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.cert_file:
        ctx.load_cert_chain(tls.cert_file, tls.key_file)
    return ctx


class MqttSession:
    def __init__(
        self,
        *,
        client_id: str,
        protocol: str,
        keepalive: int,
        username: str = "",
        password: str | None = None,
        tls: TlsConfig | None = None,
        will: Will | None = None,
        inflight_max: int = 16,
        on_publish: Callable[[int, bool, str], None],
        on_message: Callable[[str, bytes], None],
        on_disconnect: Callable[[str], None],
        log: logging.Logger,
    ) -> None:
        self.protocol = protocol
        self.keepalive = keepalive
        self.log = log
        self._on_publish = on_publish
        self._on_message = on_message
        self._on_disconnect = on_disconnect
        self._tls = tls
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connack: asyncio.Future[None] | None = None
        self.connected = False
        version = mqtt.MQTTv5 if protocol == "mqttv5" else mqtt.MQTTv311
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=version,
            clean_session=True if version == mqtt.MQTTv311 else None,
            reconnect_on_failure=False,
        )
        self.client.suppress_exceptions = True
        self.client.max_inflight_messages_set(inflight_max)
        self.client.max_queued_messages_set(0)
        if username:
            self.client.username_pw_set(username, password)
        if will is not None:
            self.client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        self.client.on_connect = self._cb_connect
        self.client.on_disconnect = self._cb_disconnect
        self.client.on_publish = self._cb_publish
        self.client.on_message = self._cb_message

    # -- paho thread -> event loop ------------------------------------------

    def _post(self, fn: Callable[..., Any], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass  # loop shutting down

    def _cb_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        try:
            code = int(getattr(reason, "value", reason))
            failure = bool(getattr(reason, "is_failure", code != 0))
            self._post(self._connack_result, code, str(reason), failure)
        except Exception:  # noqa: BLE001 - never let paho's thread die
            self.log.exception("MQTT connect callback failed")

    def _cb_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        try:
            self._post(self._disconnected, str(reason))
        except Exception:  # noqa: BLE001
            self.log.exception("MQTT disconnect callback failed")

    def _cb_publish(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        try:
            failure = bool(getattr(reason, "is_failure", False))
            self._post(self._on_publish, mid, not failure, str(reason))
        except Exception:  # noqa: BLE001
            self.log.exception("MQTT publish callback failed")

    def _cb_message(self, client: Any, userdata: Any, message: Any) -> None:
        try:
            try:
                topic = message.topic
            except UnicodeDecodeError:
                topic = repr(message._topic)
            self._post(self._on_message, topic, bytes(message.payload))
        except Exception:  # noqa: BLE001
            self.log.exception("MQTT message callback failed")

    # -- event loop side ----------------------------------------------------

    def _connack_result(self, code: int, text: str, failure: bool) -> None:
        fut = self._connack
        if fut is None or fut.done():
            return
        if not failure:
            self.connected = True
            fut.set_result(None)
        elif code in _AUTH_CODES:
            fut.set_exception(
                ConnectError("auth", f"broker refused the credentials ({text}); check uplink.username and the password file, or the client certificate")
            )
        elif code in _PROTOCOL_CODES:
            fut.set_exception(ConnectError("protocol", f"broker does not speak {self.protocol} ({text})"))
        else:
            fut.set_exception(ConnectError("refused", f"broker refused the connection ({text})"))

    def _disconnected(self, reason: str) -> None:
        was = self.connected
        self.connected = False
        fut = self._connack
        if fut is not None and not fut.done():
            fut.set_exception(ConnectError("protocol" if self.protocol == "mqttv5" else "network", f"broker closed the connection before CONNACK ({reason})"))
            return
        if was:
            self._on_disconnect(reason)

    async def connect(self, host: str, port: int, timeout: float) -> None:
        """TCP (+TLS) connect, CONNECT, and wait for a successful CONNACK; ConnectError otherwise."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._connack = loop.create_future()
        self.client.connect_timeout = timeout
        if self._tls is not None:
            try:
                self.client.tls_set_context(tls_context(self._tls))
            except (OSError, ssl.SSLError) as exc:
                raise ConnectError("tls", f"cannot load TLS files ({exc}); check uplink.tls ca_file, cert_file and key_file") from exc
        kwargs: dict[str, Any] = {"keepalive": self.keepalive}
        if self.protocol == "mqttv5":
            kwargs["clean_start"] = True
        try:
            await loop.run_in_executor(None, lambda: self.client.connect(host, port, **kwargs))
        except ssl.SSLCertVerificationError as exc:
            raise ConnectError("tls", f"broker certificate rejected: {exc.verify_message}; check uplink.tls.ca_file and the broker's host name") from exc
        except ssl.SSLError as exc:
            raise ConnectError(
                "tls", f"TLS handshake with {host}:{port} failed ({exc.reason or exc}); a client certificate may be required or rejected"
            ) from exc
        except (OSError, ValueError) as exc:
            raise ConnectError("network", f"cannot reach {host}:{port} ({exc})") from exc
        self.client.loop_start()
        try:
            await asyncio.wait_for(asyncio.shield(self._connack), timeout)
        except TimeoutError:
            await self.close()
            raise ConnectError("timeout", f"no CONNACK from {host}:{port} within {timeout:.0f} s") from None
        except ConnectError:
            await self.close()
            raise

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"publish failed: {mqtt.error_string(info.rc)}")
        return info.mid

    def subscribe(self, topic: str, qos: int = 1) -> None:
        rc, _mid = self.client.subscribe(topic, qos)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"subscribe failed: {mqtt.error_string(rc)}")

    def server_cert_expiry(self) -> float | None:
        sock = self.client.socket()
        getpeercert = getattr(sock, "getpeercert", None)
        if getpeercert is None:
            return None
        try:
            cert = getpeercert()
        except (ValueError, OSError):
            return None
        if not cert or "notAfter" not in cert:
            return None
        return float(ssl.cert_time_to_seconds(cert["notAfter"]))

    async def close(self) -> None:
        """DISCONNECT (so the broker does not publish the will) and stop paho's thread."""
        self.connected = False
        loop = asyncio.get_running_loop()

        def stop() -> None:
            try:
                self.client.disconnect()
            except Exception:  # noqa: BLE001 - socket may already be gone
                pass
            self.client.loop_stop()

        await loop.run_in_executor(None, stop)


class Subscriber:
    """A plain threaded subscriber (the reference hub): paho reconnects it and it re-subscribes.

    `on_message(topic, payload)` runs on paho's thread and must not raise;
    it is wrapped anyway.
    """

    def __init__(
        self,
        *,
        client_id: str,
        topics: list[str],
        on_message: Callable[[str, bytes], None],
        username: str = "",
        password: str | None = None,
        tls: TlsConfig | None = None,
        session_expiry: int = 0,
        log: logging.Logger,
    ) -> None:
        self.topics = topics
        # A hub should keep a persistent session: while it is away the broker
        # queues the gateways' QoS 1 messages for it instead of dropping them.
        self.session_expiry = session_expiry
        self.log = log
        self._handler = on_message
        self.connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.suppress_exceptions = True
        self.client.reconnect_delay_set(0.2, 5)
        if username:
            self.client.username_pw_set(username, password)
        if tls is not None:
            self.client.tls_set_context(tls_context(tls))
        self.client.on_connect = self._cb_connect
        self.client.on_disconnect = self._cb_disconnect
        self.client.on_message = self._cb_message

    def _cb_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if getattr(reason, "is_failure", False):
            self.log.warning("hub listener: broker refused the connection (%s)", reason)
            return
        for topic in self.topics:
            client.subscribe(topic, qos=1)
        self.connected.set()

    def _cb_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self.connected.clear()

    def _cb_message(self, client: Any, userdata: Any, message: Any) -> None:
        try:
            try:
                topic = message.topic
            except UnicodeDecodeError:
                topic = repr(message._topic)
            self._handler(topic, bytes(message.payload))
        except Exception:  # noqa: BLE001 - a bad message must not stop the hub
            self.log.exception("hub listener: handling a message failed")

    def start(self, host: str, port: int, timeout: float = 10.0) -> None:
        """Connect, subscribe and run paho's thread; keeps reconnecting if the broker goes away."""
        props = None
        if self.session_expiry:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.session_expiry
        self.client.connect_async(host, port, keepalive=30, clean_start=not self.session_expiry, properties=props)
        self.client.loop_start()
        if not self.connected.wait(timeout):
            self.stop()
            raise ConnectError("timeout", f"hub listener could not connect to {host}:{port} within {timeout:.0f} s")

    def stop(self) -> None:
        try:
            self.client.disconnect()
        except Exception:  # noqa: BLE001
            pass
        self.client.loop_stop()
