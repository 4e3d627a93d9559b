"""The CLI side of the diag socket (blocking; the CLI has no event loop of its own).

`connect()` tells the three situations apart, because each needs a different
next step from the technician: the agent is not running (go offline), the
socket is there but refuses us (permissions: join the group), or the agent
answers.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any


class AgentNotRunning(Exception):
    """No socket, or nobody listening on it: offline mode."""


class AgentUnreachable(Exception):
    """The agent runs but we may not talk to it (permissions) or it does not answer."""


class RemoteError(Exception):
    def __init__(self, code: str, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.code, self.message, self.hint = code, message, hint

    @classmethod
    def from_reply(cls, err: dict[str, Any]) -> RemoteError:
        return cls(str(err.get("code", "")), str(err.get("message", "")), str(err.get("hint", "")))


class DiagClient:
    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buf = b""
        self._next_id = 0

    def connect(self) -> DiagClient:
        # No os.path.exists() first: in a data_dir we may not enter it says
        # "missing", and the technician would be told the agent is stopped.
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except FileNotFoundError:
            sock.close()
            raise AgentNotRunning(f"no diag socket at {self.path}") from None
        except ConnectionRefusedError as exc:
            sock.close()
            raise AgentNotRunning(f"nobody listens on {self.path} ({exc.strerror}); a stale socket of a stopped agent") from None
        except PermissionError:
            sock.close()
            raise AgentUnreachable(
                f"permission denied on {self.path}: run as the agent's user, with sudo, or join the socket's group (sudo usermod -aG <group> $USER, then log in again)"
            ) from None
        except OSError as exc:
            sock.close()
            raise AgentUnreachable(f"cannot connect to {self.path}: {exc}") from None
        self._sock = sock
        return self

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> DiagClient:
        return self if self._sock else self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, cmd: str, args: dict[str, Any]) -> int:
        assert self._sock is not None, "connect() first"
        self._next_id += 1
        self._sock.sendall((json.dumps({"id": self._next_id, "cmd": cmd, "args": args}) + "\n").encode())
        return self._next_id

    def _line(self, timeout: float | None) -> dict[str, Any]:
        assert self._sock is not None
        self._sock.settimeout(timeout)
        while b"\n" not in self._buf:
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                raise AgentUnreachable(
                    f"the agent did not answer within {timeout or 0:g} s; it may be overloaded (check `top`) or hung (journalctl -u edge-agent)"
                ) from None
            if not chunk:
                raise AgentUnreachable("the agent closed the connection (it may be restarting); retry in a few seconds")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def call(self, cmd: str, timeout: float | None = None, **args: Any) -> Any:
        """One request, its result; RemoteError if the agent refused it."""
        for _msg in self.stream(cmd, timeout=timeout, **args):
            pass  # a non-streaming command sends no events
        return self.last_result

    def stream(self, cmd: str, wait: float | None = None, **args: Any) -> Iterator[Any]:
        """Yield each event of a streaming command; `last_result` holds the final reply."""
        rid = self._send(cmd, args)
        self.last_result: Any = None
        # wait: None -> the client's default, 0 -> wait forever (follow, watch, scans)
        wait = self.timeout if wait is None else (wait or None)
        while True:
            msg = self._line(wait)
            if msg.get("id") not in (rid, None):
                continue
            if "event" in msg:
                yield msg["event"]
                continue
            if msg.get("ok"):
                self.last_result = msg.get("result")
                return
            raise RemoteError.from_reply(msg.get("error") or {})
