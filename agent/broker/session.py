"""One connected client's state: subscriptions and its outbound queue.

Sessions are clean only: everything here lives exactly as long as the network
connection. QoS 1 messages in flight when a client drops are not redelivered
on its next connection (a client that needs that uses a full broker).

Outbound delivery runs in one sender task per session so that a slow
subscriber never blocks the connection that published to it. The queue has a
high-water mark that publishers wait on (bounded) and a hard cap past which
messages for that subscriber are dropped and counted.
"""

from __future__ import annotations

import asyncio
import collections
import logging

from agent.broker.outgoing import PacketWriter
from agent.broker.packets import encode_disconnect, encode_publish, encode_topic

log = logging.getLogger("agent.broker")


class Message:
    """An application message as routed: the topic is encoded once for all
    subscribers; `props` is the v5 property block forwarded as published."""

    __slots__ = ("topic", "topic_bytes", "payload", "qos", "retain", "props", "origin")

    def __init__(self, topic: str, payload: bytes, qos: int, retain: bool, props: bytes = b"", origin: object = None) -> None:
        self.topic = topic
        self.topic_bytes = encode_topic(topic)
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.props = props
        self.origin = origin


class SubOptions:
    __slots__ = ("qos", "no_local", "retain_as_published", "retain_handling")

    def __init__(self, options: int, max_qos: int) -> None:
        self.qos = min(options & 0x03, max_qos)
        self.no_local = bool(options & 0x04)
        self.retain_as_published = bool(options & 0x08)
        self.retain_handling = (options >> 4) & 0x03


class Session:
    def __init__(
        self, client_id: str, v5: bool, writer: PacketWriter, *, max_inflight: int, max_queued: int, high_water: int, max_packet_size: int | None
    ) -> None:
        self.client_id = client_id
        self.v5 = v5
        self.writer = writer
        self.max_inflight = max_inflight
        self.max_queued = max_queued
        self.high_water = high_water
        self.max_packet_size = max_packet_size  # the client's limit (v5), None = none
        self.subscriptions: dict[str, SubOptions] = {}
        self.awaiting_release: set[int] = set()  # inbound QoS 2 ids between PUBREC and PUBREL
        self.queue: collections.deque = collections.deque()
        self.inflight: dict[int, Message] = {}
        self.dropped = 0
        self.stalled = False  # publishers stopped waiting for us; see Router.wait_for_room
        self.has_room = asyncio.Event()
        self.has_room.set()
        self.closed = False
        self._next_id = 1
        self._wake = asyncio.Event()
        self._sender: asyncio.Task | None = None

    def start_sender(self) -> None:
        self._sender = asyncio.get_running_loop().create_task(self._send_loop(), name=f"mqtt-send-{self.client_id}")

    def enqueue(self, msg: Message, qos: int, retain: bool) -> bool:
        """Queue for delivery; False if the queue is full and the message dropped."""
        if self.closed:
            return False
        if len(self.queue) >= self.max_queued:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning(
                    "client %s is not reading: %d messages dropped (queue of %d full)",
                    self.client_id,
                    self.dropped,
                    self.max_queued,
                )
            return False
        self.queue.append((msg, qos, retain))
        if len(self.queue) >= self.high_water:
            self.has_room.clear()
        self._wake.set()
        return True

    def acknowledged(self, packet_id: int) -> None:
        if self.inflight.pop(packet_id, None) is not None and self.queue:
            self._wake.set()

    def _allocate_id(self) -> int:
        # Bounded: at most max_inflight (< 65535) ids are taken at any time.
        while True:
            pid = self._next_id
            self._next_id = pid + 1 if pid < 0xFFFF else 1
            if pid not in self.inflight:
                return pid

    async def _send_loop(self) -> None:
        writer = self.writer
        while not self.closed:
            await self._wake.wait()
            self._wake.clear()
            written = 0
            queue = self.queue
            while queue and not self.closed:
                msg, qos, retain = queue[0]
                if qos and len(self.inflight) >= self.max_inflight:
                    break  # woken again by the next PUBACK
                queue.popleft()
                if len(queue) < self.high_water // 2:
                    self.has_room.set()
                    self.stalled = False
                pid = self._allocate_id() if qos else 0
                data = encode_publish(msg.topic_bytes, msg.payload, qos, retain, pid, msg.props if self.v5 else None)
                if self.max_packet_size is not None and len(data) > self.max_packet_size:
                    # MQTT 5: a message the client cannot take is discarded for it.
                    log.info("message on %s too large for client %s, not sent", msg.topic, self.client_id)
                    continue
                if qos:
                    self.inflight[pid] = msg
                writer.write(data)
                written += 1
                if written % 128 == 0:
                    await writer.drain()
            await writer.drain()

    def kick(self, reason: int) -> None:
        """Close this session's connection from outside (a newer connection took
        its client id); its own connection task then cleans up."""
        if self.v5 and not self.writer.is_closing():
            self.writer.write(encode_disconnect(reason))
        self.writer.close()

    async def close(self) -> None:
        self.closed = True
        self.has_room.set()  # release publishers waiting for this session
        self._wake.set()
        if self._sender is not None and not self._sender.done():
            self._sender.cancel()
            try:
                await self._sender
            except (asyncio.CancelledError, ConnectionError, OSError):
                pass
            except Exception:  # a broken socket must not break the broker's cleanup
                log.debug("sender of %s ended with an error", self.client_id, exc_info=True)
