"""EmbeddedBroker: the listening socket and the set of live connections."""

from __future__ import annotations

import asyncio
import ipaddress
import logging

from agent.broker.connection import Connection, Settings
from agent.broker.router import Router

log = logging.getLogger("agent.broker")

DEFAULT_MAX_PACKET_SIZE = 4 * 1024 * 1024


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class EmbeddedBroker:
    """A small MQTT 3.1.1 / 5 broker in the agent's own event loop.

    `await start()` binds and returns the port (an ephemeral one with port=0);
    `await stop()` closes every connection and waits for them, bounded.
    There is no authentication: it listens on loopback unless told otherwise.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = 0,
        *,
        max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
        max_inflight: int = 100,
        max_queued_messages: int = 10_000,
        connect_timeout: float = 10.0,
        publisher_wait: float = 2.0,
        hold_unrouted: int = 0,
    ) -> None:
        if max_packet_size < 64:
            raise ValueError("max_packet_size must be at least 64 bytes")
        self.host = host
        self._requested_port = port or 0  # None or 0: any free port
        self._port: int | None = None
        self.settings = Settings(max_packet_size, max_inflight, max_queued_messages, connect_timeout)
        # hold_unrouted > 0: QoS 1 messages nobody subscribed to are held (up
        # to this many) with their PUBACK withheld until a subscriber comes.
        self.router = Router(publisher_wait, hold_unrouted)
        self._server: asyncio.AbstractServer | None = None
        self._connections: dict[asyncio.Task, Connection] = {}

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the broker is not started: await start() first")
        return self._port

    async def start(self) -> int:
        if self._server is not None:
            return self.port
        if not _is_loopback(self.host):
            log.warning(
                "embedded broker listening on %s: it has no authentication, so any host that can reach this address can publish and subscribe", self.host
            )
        self.settings.stopping = False
        self._server = await asyncio.start_server(self._on_client, self.host, self._requested_port)
        self._port = self._server.sockets[0].getsockname()[1]
        log.info("embedded MQTT broker listening on %s:%d", self.host, self._port)
        return self._port

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        conn = Connection(self.settings, self.router, reader, writer)
        self._connections[task] = conn
        try:
            await conn.run()
        finally:
            self._connections.pop(task, None)

    async def stop(self, timeout: float = 5.0) -> None:
        if self._server is None:
            return
        self.settings.stopping = True  # no wills while everyone is being disconnected
        self._server.close()
        for conn in list(self._connections.values()):
            conn.shutdown()
        tasks = list(self._connections)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=timeout)
        await self._server.wait_closed()
        self._server = None
        log.info("embedded MQTT broker on %s:%s stopped", self.host, self._port)

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
