"""Coalescing writes to one client socket.

Every write to a client goes through here, from the connection's reader (acks,
PINGRESP) and from its sender task (PUBLISH), so their order is kept. Packets
written during one event-loop turn leave in one send() call: on loopback a
syscall per PUBACK was the broker's largest cost.
"""

from __future__ import annotations

import asyncio


class PacketWriter:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self._parts: list[bytes] = []
        self._scheduled = False
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes) -> None:
        self._parts.append(data)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if not self._parts:
            return
        data = b"".join(self._parts)
        self._parts.clear()
        if not self.writer.is_closing():
            self.writer.write(data)

    async def drain(self) -> None:
        self.flush()
        await self.writer.drain()

    def is_closing(self) -> bool:
        return self.writer.is_closing()

    def close(self) -> None:
        self.flush()
        self.writer.close()
