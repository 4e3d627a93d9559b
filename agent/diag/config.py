"""[diagnostics] section: the technician's local socket."""

from __future__ import annotations

from pydantic import Field

from drivers.base import StrictModel


class DiagnosticsConfig(StrictModel):
    socket: str = Field("", description="Unix socket the diag CLI talks to; empty: diag.sock in the data_dir. Mode 0660, never TCP.")
