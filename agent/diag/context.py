"""What every `edge-agent diag` command starts from: config, socket, output style."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from agent.diag.client import AgentNotRunning, AgentUnreachable, DiagClient, RemoteError
from agent.diag.render import Style, colour_enabled

_UNSET = object()

# Exit codes of the diag commands (status: 0 healthy, 1 degraded, 2 broken).
EXIT_OK, EXIT_DEGRADED, EXIT_BROKEN = 0, 1, 2


class CliError(Exception):
    """A message for the technician, with what to try next; exit code 2 unless given."""

    def __init__(self, message: str, hint: str = "", code: int = EXIT_BROKEN) -> None:
        super().__init__(message)
        self.message, self.hint, self.code = message, hint, code


class Ctx:
    def __init__(self, args: Any) -> None:
        self.args = args
        self.json = bool(getattr(args, "json", False))
        no_colour = getattr(args, "no_color", False)
        self.style = Style(colour_enabled(sys.stdout, False if no_colour else None))
        self.config_path = args.config
        self.config_error = ""
        self._config: Any = _UNSET
        # The socket path comes from a plain TOML read: validating the whole
        # config costs a second on a Pi and commands that only ask the agent
        # do not need it (`config` validates on first use).
        self._raw = self._read_raw(args.config)
        gw = self._raw.get("gateway") if isinstance(self._raw.get("gateway"), dict) else {}
        self.data_dir = os.path.abspath(str(gw.get("data_dir", "/var/lib/edge-agent"))) if self._raw else ""
        self.socket_path = self._socket_path()
        self._client: DiagClient | None = None
        self.offline_reason = ""

    @property
    def config(self) -> Any:
        if self._config is _UNSET:
            self._config = self._load_config(self.config_path)
            if self._config is not None:
                self.data_dir = os.path.abspath(self._config.gateway.data_dir)
        return self._config

    @staticmethod
    def _read_raw(path: str | None) -> dict[str, Any]:
        import tomllib

        try:
            with open(path or "", "rb") as fh:
                return tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError):
            return {}

    def _load_config(self, path: str | None) -> Any:
        from agent.config.errors import ConfigError
        from agent.config.loader import load_config

        if not path or not os.path.exists(path):
            self.config_error = f"config {path} not found"
            return None
        try:
            return load_config(path)
        except ConfigError as exc:
            self.config_error = exc.render()
            return None

    def _socket_path(self) -> str:
        if getattr(self.args, "socket", None):
            return os.path.abspath(self.args.socket)
        diag = self._raw.get("diagnostics") if isinstance(self._raw.get("diagnostics"), dict) else {}
        if diag.get("socket"):
            return os.path.abspath(str(diag["socket"]))
        if self._raw:
            return os.path.join(self.data_dir, "diag.sock")
        if self.config is not None:  # unreadable as plain TOML: the loader explains why
            return os.path.join(self.data_dir, "diag.sock")
        return ""

    def need_config(self) -> Any:
        if self.config is None:
            raise CliError(self.config_error, "pass the gateway's config with --config FILE (default /etc/edge-agent/gateway.toml)")
        return self.config

    def agent(self) -> DiagClient | None:
        """A connected client, or None when the agent is not running (offline mode)."""
        if self._client is not None:
            return self._client
        if not self.socket_path:
            self.offline_reason = "no socket known (no config): cannot ask the agent"
            return None
        try:
            self._client = DiagClient(self.socket_path, timeout=float(getattr(self.args, "timeout_agent", 10.0) or 10.0)).connect()
        except AgentNotRunning as exc:
            self.offline_reason = f"agent not running ({exc})"
            return None
        except AgentUnreachable as exc:
            raise CliError(str(exc), "") from None
        return self._client

    def call(self, cmd: str, **args: Any) -> Any:
        client = self.agent()
        if client is None:
            raise CliError(
                f"the agent is not running ({self.offline_reason})", "start it (sudo systemctl start edge-agent) or use a command that works offline"
            )
        try:
            return client.call(cmd, **args)
        except RemoteError as err:
            raise CliError(err.message, err.hint) from None
        except AgentUnreachable as exc:
            raise CliError(str(exc)) from None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def note(self, text: str) -> None:
        """A remark for humans on stderr (so --json output stays clean)."""
        print(self.style(text, "yellow"), file=sys.stderr, flush=True)

    def emit_json(self, obj: Any) -> None:
        print(json.dumps(obj, indent=2, default=str, sort_keys=False), flush=True)

    def emit_line(self, obj: Any) -> None:
        print(json.dumps(obj, default=str, separators=(",", ":")), flush=True)
