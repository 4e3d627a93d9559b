"""[diagnostics] section: the technician's local socket and support bundles."""

from __future__ import annotations

from pydantic import Field

from drivers.config import StrictModel


class DiagnosticsConfig(StrictModel):
    enabled: bool = Field(True, description="Serve the diag socket. Off: `edge-agent diag` only works with the agent stopped (offline mode).")
    socket: str = Field("", description="Unix socket the diag CLI talks to; empty: diag.sock in the data_dir. Mode 0660, never TCP.")
    group: str = Field("", description="Group that owns the socket (its members may run `edge-agent diag`); empty: the agent's own group.")
    max_request_bytes: int = Field(
        16384, ge=256, le=1_048_576, description="Longest request line accepted; a longer one is answered with an error and the connection closed."
    )
    max_clients: int = Field(8, ge=1, le=64, description="Diag connections served at once; more are refused with a message.")
    idle_timeout: float = Field(600.0, gt=0, description="Seconds a connection may stay silent before the agent closes it.")
    log_file: str = Field("", description="Agent log file put into support bundles when journald is not available (empty: journald only).")
    journal_unit: str = Field("edge-agent", description="systemd unit whose journal goes into support bundles.")
