"""The diag socket's wire protocol: line-delimited JSON, one object per line.

Request:   {"id": 7, "cmd": "status", "args": {...}}
Reply:     {"id": 7, "ok": true, "result": {...}}
Error:     {"id": 7, "ok": false, "error": {"code": "...", "message": "...", "hint": "..."}}
Streaming commands (`readings` with follow, `watch`) send any number of
           {"id": 7, "event": {...}}
lines before the final reply; the client ends a stream by closing the socket.
Requests are bounded (DiagnosticsConfig.max_request_bytes); replies are not
(a JPEG snapshot is a few hundred KB of base64). See docs/field-guide.md.
"""

from __future__ import annotations

import json
from typing import Any

PROTOCOL_VERSION = 1

# Error codes a client can act on.
BAD_REQUEST = "bad_request"  # not JSON, not an object, missing cmd
TOO_LARGE = "too_large"  # request line over the limit; the connection is closed
UNKNOWN_COMMAND = "unknown_command"
BAD_ARGS = "bad_args"  # arguments missing or of the wrong type
NOT_FOUND = "not_found"  # no such device, bus or camera
UNAVAILABLE = "unavailable"  # the subsystem is not running (no vision, no outbox yet)
FAILED = "failed"  # the operation ran and failed (device timeout...)
INTERNAL = "internal"  # a bug; logged by the agent with its traceback
BUSY = "busy"  # too many diag clients


class DiagError(Exception):
    """An error a handler reports to the client; `hint` says what to try next."""

    def __init__(self, code: str, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "hint": self.hint}


def _default(obj: Any) -> Any:
    if isinstance(obj, bytes | bytearray):
        return obj.hex()
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    if hasattr(obj, "as_dict"):
        return obj.as_dict()
    return str(obj)


def encode(message: dict[str, Any]) -> bytes:
    return (json.dumps(message, default=_default, separators=(",", ":")) + "\n").encode()


def decode_request(line: bytes) -> tuple[Any, str, dict[str, Any]]:
    """(id, cmd, args) of a request line, or DiagError(BAD_REQUEST)."""
    try:
        msg = json.loads(line)
    except RecursionError:
        raise DiagError(BAD_REQUEST, "request nested too deeply", "requests are flat JSON objects") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise DiagError(BAD_REQUEST, f"request is not JSON: {exc}", 'send one JSON object per line: {"id": 1, "cmd": "status"}') from None
    if not isinstance(msg, dict):
        raise DiagError(BAD_REQUEST, "request is not a JSON object", 'send {"id": 1, "cmd": "status", "args": {}}')
    cmd = msg.get("cmd")
    if not isinstance(cmd, str) or not cmd:
        raise DiagError(BAD_REQUEST, "request has no `cmd`", 'name the command: {"id": 1, "cmd": "status"}')
    args = msg.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise DiagError(BAD_ARGS, "`args` must be a JSON object")
    rid = msg.get("id")
    if not isinstance(rid, int | str | type(None)) or isinstance(rid, bool):
        rid = None
    return rid, cmd, args


def reply(rid: Any, result: Any) -> bytes:
    return encode({"id": rid, "ok": True, "result": result})


def error(rid: Any, err: DiagError) -> bytes:
    return encode({"id": rid, "ok": False, "error": err.as_dict()})


def event(rid: Any, payload: Any) -> bytes:
    return encode({"id": rid, "event": payload})


# -- argument checks for handlers ----------------------------------------
def arg_int(args: dict[str, Any], name: str, default: int | None, lo: int, hi: int) -> int:
    value = args.get(name, default)
    if value is None or isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise DiagError(BAD_ARGS, f"`{name}` must be an integer in {lo}..{hi}, got {value!r}")
    return value


def arg_float(args: dict[str, Any], name: str, default: float, lo: float, hi: float) -> float:
    value = args.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise DiagError(BAD_ARGS, f"`{name}` must be a number in {lo}..{hi}, got {value!r}")
    return float(value)


def arg_str(args: dict[str, Any], name: str, default: str | None = None) -> str:
    value = args.get(name, default)
    if not isinstance(value, str) or not value or len(value) > 256:
        raise DiagError(BAD_ARGS, f"`{name}` must be a non-empty string")
    return value
