"""One client connection: the CONNECT handshake, the packet loop, and the
cleanup that publishes the last will when the client vanished without a
DISCONNECT.

Anything wrong with what one client sends ends that client's connection
(with a v5 DISCONNECT naming the reason where the protocol has one) and
nothing else: every exception stops at `Connection.run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

from agent.broker import packets as p
from agent.broker.outgoing import PacketWriter
from agent.broker.properties import MalformedPacket, ProtocolError
from agent.broker.router import Router
from agent.broker.session import Message, Session, SubOptions
from agent.broker.topics import is_shared, valid_filter, valid_topic_name

log = logging.getLogger("agent.broker")

# Outbound QoS is capped at 1: a QoS 2 subscription is granted QoS 1 in SUBACK
# (allowed by the specification). Inbound QoS 2 is fully supported.
MAX_SUBSCRIPTION_QOS = 1

# MQTT 5 reason codes used below.
KEEP_ALIVE_TIMEOUT, SESSION_TAKEN_OVER, SERVER_SHUTTING_DOWN = 0x8D, 0x8E, 0x8B
TOPIC_NAME_INVALID, TOPIC_ALIAS_INVALID, PACKET_ID_NOT_FOUND = 0x90, 0x94, 0x92
DISCONNECT_WITH_WILL = 0x04
QUOTA_EXCEEDED = 0x97
WRITE_BUFFER_LIMIT = 256 * 1024


class Settings:
    """Limits shared by all connections of one broker."""

    def __init__(self, max_packet_size: int, max_inflight: int, max_queued: int, connect_timeout: float) -> None:
        self.max_packet_size = max_packet_size
        self.max_inflight = max_inflight
        self.max_queued = max_queued
        self.high_water = max(2, min(1000, max_queued // 2))
        self.connect_timeout = connect_timeout
        self.stopping = False


class Connection:
    def __init__(self, settings: Settings, router: Router, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.settings = settings
        self.router = router
        self.reader = reader
        self.stream = writer
        self.writer = PacketWriter(writer)
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.v5 = False
        self.session: Session | None = None
        self.will: p.Will | None = None
        # Idle watchdog (connect timeout, then 1.5 x keep-alive). One timer per
        # connection, re-armed lazily, instead of a timeout around every read:
        # that cost more than parsing the packet.
        self._loop = asyncio.get_running_loop()
        self._idle_limit = 0.0
        self._last_seen = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timed_out = False

    @property
    def name(self) -> str:
        return self.session.client_id if self.session else f"<new client {self.peer}>"

    async def run(self) -> None:
        abnormal = True
        try:
            abnormal = await self._serve()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            if self._timed_out and self.session is None:
                log.info("%s sent no CONNECT within %.0f s; closed", self.name, self.settings.connect_timeout)
            elif self._timed_out:
                log.info("client %s exceeded its keep-alive; closed", self.name)
            else:
                log.info("client %s closed its connection without DISCONNECT", self.name)
        except MalformedPacket as exc:
            log.warning("client %s sent a bad packet (%s); closed", self.name, exc)
            if self.session is not None:
                self._send_disconnect(exc.reason)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("internal error while serving %s; that connection is closed", self.name)
        finally:
            await self._cleanup(abnormal)

    def shutdown(self) -> None:
        """Broker stopping: tell v5 clients why, then close."""
        self._send_disconnect(SERVER_SHUTTING_DOWN)
        self.writer.close()

    def _send_disconnect(self, reason: int) -> None:
        if self.v5 and self.session is not None and not self.writer.is_closing():
            with contextlib.suppress(Exception):
                self.writer.write(p.encode_disconnect(reason))

    def _arm_watchdog(self, seconds: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._idle_limit = seconds
        self._last_seen = self._loop.time()
        if seconds:
            self._timer = self._loop.call_at(self._last_seen + seconds, self._check_idle)

    def _check_idle(self) -> None:
        deadline = self._last_seen + self._idle_limit
        if self._loop.time() < deadline:
            self._timer = self._loop.call_at(deadline, self._check_idle)
            return
        # Closing our end wakes the pending read with EOF; run() reports why.
        self._timer = None
        self._timed_out = True
        self._send_disconnect(KEEP_ALIVE_TIMEOUT)
        self.writer.close()

    async def _cleanup(self, abnormal: bool) -> None:
        if self._timer is not None:
            self._timer.cancel()
        session = self.session
        if session is not None:
            self.router.unregister(session)
            await session.close()
            if abnormal and self.will is not None and not self.settings.stopping:
                will = self.will
                props = b""
                if will.properties is not None:
                    # Forward the will's properties except the delay, which belongs
                    # to the will and not to the message (delays are not honoured).
                    pairs = [(i, v) for i, v in will.properties.pairs if i != 0x18]
                    props = _strip_length(p.encode_properties(pairs)) if pairs else b""
                log.info("publishing the will of %s on %s", session.client_id, will.topic)
                self.router.publish(Message(will.topic, will.payload, will.qos, will.retain, props))
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.stream.wait_closed(), 2.0)

    # -- handshake ------------------------------------------------------------

    async def _read(self) -> tuple[int, int, bytes]:
        ptype, flags, body = await p.read_packet(self.reader, self.settings.max_packet_size)
        self._last_seen = self._loop.time()
        p.check_flags(ptype, flags)
        return ptype, flags, body

    async def _serve(self) -> bool:
        """Returns whether the will must be published (False after a normal DISCONNECT)."""
        self._arm_watchdog(self.settings.connect_timeout)
        ptype, _, body = await self._read()
        if ptype != p.CONNECT:
            raise ProtocolError(f"first packet is type {ptype}, not CONNECT")
        try:
            pkt = p.parse_connect(body)
        except p.UnsupportedProtocol as exc:
            log.info("%s: %s; refused", self.name, exc)
            # 3.1.1-format CONNACK "unacceptable protocol version": every version reads it.
            self.writer.write(p.encode_connack(False, False, 0x01))
            return False
        if not await self._accept(pkt):
            return False
        self._arm_watchdog(pkt.keepalive * 1.5)
        while True:
            ptype, flags, body = await self._read()
            if ptype == p.DISCONNECT:
                reason = p.parse_disconnect(body, self.v5)
                log.info("client %s disconnected", self.name)
                return reason == DISCONNECT_WITH_WILL
            await self._dispatch(ptype, flags, body)
            if self.stream.transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
                # The client is not reading its acks: stop reading from it too.
                await self.writer.drain()

    async def _accept(self, pkt: p.Connect) -> bool:
        v5 = pkt.level == p.MQTT_5
        self.v5 = v5
        props = pkt.properties
        if props is not None and props.get("auth_method") is not None:
            log.info("%s asked for enhanced authentication, which is not offered", self.name)
            self.writer.write(p.encode_connack(True, False, 0x8C))  # bad authentication method
            return False
        client_id = pkt.client_id
        assigned = not client_id
        if assigned:
            if not v5 and not pkt.clean:
                # 3.1.1: an empty client id is only allowed with a clean session.
                self.writer.write(p.encode_connack(False, False, 0x02))
                return False
            client_id = "auto-" + secrets.token_hex(8)
        receive_max = props.get("receive_maximum", 65535) if props is not None else 65535
        session = Session(
            client_id,
            v5,
            self.writer,
            max_inflight=min(self.settings.max_inflight, receive_max),
            max_queued=self.settings.max_queued,
            high_water=self.settings.high_water,
            max_packet_size=props.get("maximum_packet_size") if props is not None else None,
        )
        self.will = pkt.will
        previous = self.router.register(session)
        if previous is not None:
            log.info("client id %s connected again; closing its previous connection", client_id)
            previous.kick(SESSION_TAKEN_OVER)
        ack_props: list = []
        if v5:
            ack_props = [(0x27, self.settings.max_packet_size), (0x29, 0), (0x2A, 0)]
            if assigned:
                ack_props.append((0x12, client_id))
            if props is not None and props.get("session_expiry", 0):
                ack_props.append((0x11, 0))  # sessions end with the connection
        self.writer.write(p.encode_connack(v5, False, 0, tuple(ack_props)))
        self.session = session
        session.start_sender()
        log.info("client %s connected from %s (MQTT %s)", client_id, self.peer, "5" if v5 else "3.1.1" if pkt.level == 4 else "3.1")
        return True

    # -- packets after CONNECT ----------------------------------------------------

    async def _dispatch(self, ptype: int, flags: int, body: bytes) -> None:
        session = self.session
        if ptype == p.PUBLISH:
            await self._on_publish(flags, body)
        elif ptype == p.PUBACK:
            session.acknowledged(p.parse_ack(body, self.v5)[0])
        elif ptype == p.PUBREL:
            pid = p.parse_ack(body, self.v5)[0]
            known = pid in session.awaiting_release
            session.awaiting_release.discard(pid)
            reason = 0 if known else PACKET_ID_NOT_FOUND
            self.writer.write(p.encode_ack(p.PUBCOMP, pid, self.v5, reason))
        elif ptype in (p.PUBREC, p.PUBCOMP):
            p.parse_ack(body, self.v5)  # never expected: the broker sends no QoS 2
        elif ptype == p.SUBSCRIBE:
            self._on_subscribe(body)
        elif ptype == p.UNSUBSCRIBE:
            pid, filters = p.parse_unsubscribe(body, self.v5)
            codes = [0x00 if self.router.unsubscribe(session, f) else 0x11 for f in filters]
            self.writer.write(p.encode_unsuback(pid, codes, self.v5))
        elif ptype == p.PINGREQ:
            if body:
                raise MalformedPacket("PINGREQ with a body")
            self.writer.write(p.PINGRESP_BYTES)
        else:
            raise ProtocolError(f"unexpected packet type {ptype} from a client")

    async def _on_publish(self, flags: int, body: bytes) -> None:
        pkt = p.parse_publish(flags, body, self.v5)
        props = pkt.properties
        if props is not None and props.get("topic_alias") is not None:
            raise ProtocolError("topic alias used; this broker allows none", TOPIC_ALIAS_INVALID)
        if not valid_topic_name(pkt.topic):
            raise ProtocolError(f"invalid topic name {pkt.topic!r}", TOPIC_NAME_INVALID)
        session = self.session
        if pkt.qos == 2 and pkt.packet_id in session.awaiting_release:
            # Retransmission before PUBREL: already routed once, acknowledge only.
            self.writer.write(p.encode_ack(p.PUBREC, pkt.packet_id, self.v5))
            return
        msg = Message(pkt.topic, pkt.payload, pkt.qos, pkt.retain, props.raw if props is not None else b"", origin=session)
        if pkt.qos == 1 and self.router.should_hold(msg):
            ack = p.encode_ack(p.PUBACK, pkt.packet_id, self.v5)
            if not self.router.hold(msg, lambda: session.closed or self.writer.write(ack)):
                # The client keeps what we do not acknowledge and sends it again
                # after reconnecting, by when a subscriber may be there.
                raise ProtocolError("too many messages held for absent subscribers", QUOTA_EXCEEDED)
            return
        full = self.router.publish(msg)
        if full:
            await self.router.wait_for_room(full)
        if pkt.qos == 1:
            self.writer.write(p.encode_ack(p.PUBACK, pkt.packet_id, self.v5))
        elif pkt.qos == 2:
            session.awaiting_release.add(pkt.packet_id)
            self.writer.write(p.encode_ack(p.PUBREC, pkt.packet_id, self.v5))

    def _on_subscribe(self, body: bytes) -> None:
        pid, props, topics = p.parse_subscribe(body, self.v5)
        if props is not None and props.get("subscription_id") is not None:
            raise ProtocolError("subscription identifiers are not supported", 0xA1)
        codes = []
        granted = []
        for topic_filter, options in topics:
            if not valid_filter(topic_filter):
                codes.append(0x8F if self.v5 else 0x80)
            elif is_shared(topic_filter):
                codes.append(0x9E if self.v5 else 0x80)
            else:
                opts = SubOptions(options, MAX_SUBSCRIPTION_QOS)
                is_new = self.router.subscribe(self.session, topic_filter, opts)
                codes.append(opts.qos)
                granted.append((topic_filter, opts, is_new))
        self.writer.write(p.encode_suback(pid, codes, self.v5))
        # Retained messages go out after the SUBACK, through the session's queue.
        for topic_filter, opts, is_new in granted:
            self.router.send_retained(self.session, topic_filter, opts, is_new)
        if granted:
            self.router.release_held()


def _strip_length(block: bytes) -> bytes:
    """encode_properties prefixes the block length; Message.props holds the bare block."""
    i = 0
    while block[i] & 0x80:
        i += 1
    return block[i + 1 :]
