"""The agent's diag socket: a Unix socket served on the agent's event loop.

Never a TCP port: access is whoever may open the socket file (mode 0660, the
agent's user and group). Each connection is served one request at a time;
handlers live in agent.diag.handlers and must not block the loop (anything
slow goes to a thread), so `diag status` answers while drivers and vision
are busy. A bad request is answered with an error and never reaches the rest
of the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import logging
import os
import socket
import stat
from typing import TYPE_CHECKING, Any

from agent.diag import protocol as p

if TYPE_CHECKING:
    from agent.diag.config import DiagnosticsConfig

log = logging.getLogger("edge_agent.diag")

DRAIN_TIMEOUT = 10.0  # a client that reads nothing for this long is dropped


def socket_path(config: DiagnosticsConfig, data_dir: str) -> str:
    return os.path.abspath(config.socket or os.path.join(data_dir, "diag.sock"))


def _alive(path: str) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(0.5)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


class DiagServer:
    def __init__(self, agent: Any, config: DiagnosticsConfig) -> None:
        self.agent = agent
        self.config = config
        self.path = socket_path(config, agent.data_dir)
        self.clients = 0
        self.requests = 0
        self.errors = 0
        self.error = ""  # why the socket could not be served, if it could not
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        if not self.config.enabled:
            log.info("diagnostics socket disabled in [diagnostics]")
            return
        from agent.diag.handlers import HANDLERS

        self._handlers = HANDLERS
        try:
            sock = self._bind()
        except (OSError, RuntimeError, KeyError) as exc:
            # Diagnostics are for the technician; a problem here must never
            # keep the agent from collecting and delivering readings.
            self.error = f"{exc}" if not isinstance(exc, KeyError) else f"group {self.config.group!r} does not exist; create it or clear [diagnostics] group"
            log.error("diagnostics socket not available: %s (the agent runs on; `edge-agent diag` works offline only)", self.error)
            return
        self._server = await asyncio.start_unix_server(self._serve, sock=sock, limit=self.config.max_request_bytes)
        log.info("diagnostics on %s (unix socket, mode 0660)", self.path)

    def _bind(self) -> socket.socket:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        if os.path.lexists(self.path):
            if not stat.S_ISSOCK(os.lstat(self.path).st_mode):
                raise RuntimeError(f"{self.path} exists and is not a socket; remove it or set [diagnostics] socket elsewhere")
            if _alive(self.path):
                raise RuntimeError(f"another agent already serves {self.path}; stop it first (systemctl stop edge-agent)")
            os.unlink(self.path)  # left over from a killed agent
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(self.path)
            # Permissions are set before listen(), so no client can connect
            # through a wider mode in between.
            os.chmod(self.path, 0o660)
            gid = os.getgid()
            if self.config.group:
                gid = grp.getgrnam(self.config.group).gr_gid
            os.chown(self.path, os.getuid(), gid)
            sock.listen(self.config.max_clients)
        except BaseException:
            sock.close()
            with contextlib.suppress(OSError):
                os.unlink(self.path)  # no half-set-up socket left for a client to find
            raise
        sock.setblocking(False)
        return sock

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._conns):
            task.cancel()
        if self._conns:
            await asyncio.wait(self._conns, timeout=0.3)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self._server = None

    # -- one connection ----------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._conns.add(task)
        self.clients += 1
        try:
            if self.clients > self.config.max_clients:
                writer.write(
                    p.error(
                        None,
                        p.DiagError(
                            p.BUSY,
                            f"{self.config.max_clients} diag clients are connected already",
                            "close another diag session (watch, readings --follow) and retry",
                        ),
                    )
                )
                await _drain(writer)
                return
            await self._requests(reader, writer)
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.clients -= 1
            if task is not None:
                self._conns.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 0.5)

    async def _requests(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pending: asyncio.Task[bytes] | None = None
        while True:
            if pending is None:
                pending = asyncio.ensure_future(reader.readline())
            try:
                line = await asyncio.wait_for(pending, self.config.idle_timeout)
            except TimeoutError:
                return
            except (ValueError, asyncio.LimitOverrunError):
                # Longer than max_request_bytes: the rest of the line is
                # unread, so the stream cannot be resynchronised; close.
                self.errors += 1
                writer.write(
                    p.error(
                        None,
                        p.DiagError(
                            p.TOO_LARGE, f"request longer than {self.config.max_request_bytes} bytes", "requests are small JSON objects; check the client"
                        ),
                    )
                )
                await _drain(writer)
                return
            pending = None
            if not line:
                return
            if not line.strip():
                continue
            pending = await self._one(line, reader, writer)

    async def _one(self, line: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> asyncio.Task[bytes] | None:
        """Run one request; returns the client's next read if it was started meanwhile."""
        self.requests += 1
        rid: Any = None
        try:
            rid, cmd, args = p.decode_request(line)
            handler = self._handlers.get(cmd)
            if handler is None:
                raise p.DiagError(p.UNKNOWN_COMMAND, f"unknown command {cmd!r}", "known: " + ", ".join(sorted(self._handlers)))
        except p.DiagError as err:
            self.errors += 1
            writer.write(p.error(rid, err))
            await _drain(writer)
            return None

        async def emit(payload: Any) -> None:
            writer.write(p.event(rid, payload))
            await _drain(writer)

        work = asyncio.ensure_future(handler(self.agent, args, emit))
        # Race the handler against the client: EOF (Ctrl-C on the laptop)
        # cancels a scan or a follow; a pipelined request is kept for later.
        nxt: asyncio.Task[bytes] = asyncio.ensure_future(reader.readline())
        try:
            done, _ = await asyncio.wait({work, nxt}, return_when=asyncio.FIRST_COMPLETED)
            if work not in done:
                exc = nxt.exception()
                if exc is not None or not nxt.result():
                    work.cancel()
                    with contextlib.suppress(BaseException):
                        await work
                    raise ConnectionResetError("client went away")
                await work
            result = work.result()
            writer.write(p.reply(rid, result))
        except p.DiagError as err:
            self.errors += 1
            writer.write(p.error(rid, err))
        except (ConnectionError, asyncio.CancelledError):
            work.cancel()
            nxt.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - a handler bug must not reach the agent
            self.errors += 1
            log.exception("diag command %s failed", cmd)
            writer.write(
                p.error(
                    rid, p.DiagError(p.INTERNAL, f"{type(exc).__name__}: {exc}", "this is a bug in the agent; attach `edge-agent diag bundle` to the report")
                )
            )
        await _drain(writer)
        return nxt

    def status(self) -> dict[str, Any]:
        return {"socket": self.path, "clients": self.clients, "requests": self.requests, "errors": self.errors, "error": self.error}


async def _drain(writer: asyncio.StreamWriter) -> None:
    await asyncio.wait_for(writer.drain(), DRAIN_TIMEOUT)
