"""[remote] section: commands and updates from the hub."""

from __future__ import annotations

import base64

from pydantic import Field, field_validator

from drivers.config import StrictModel


class RemoteConfig(StrictModel):
    enabled: bool = Field(True, description="Accept commands from the hub on the gateway's command topic.")
    trusted_keys: list[str] = Field(
        default_factory=list,
        description="Ed25519 public keys (base64 of the 32 raw bytes) whose signatures the gateway accepts on "
        "configuration and model updates. Empty: every update is refused.",
    )
    require_signed_commands: bool = Field(False, description="Refuse every command that is not signed, not only updates.")
    max_clock_skew: float = Field(
        300.0, gt=0, le=86400, description="Seconds a command's timestamp may differ from the gateway's clock; older or newer ones are refused as expired."
    )
    replay_window_max: int = Field(10000, ge=100, le=1_000_000, description="Nonces remembered at most (persisted under the data_dir).")
    allow_reboot: bool = Field(False, description="Let the hub reboot the gateway (through `systemctl reboot`).")
    rollback_deadline: float = Field(
        120.0, ge=5, le=3600, description="Seconds a new configuration has to come up healthy (connected to the hub) before it is rolled back."
    )
    max_log_level_duration: float = Field(3600.0, gt=0, le=86400, description="Longest time a `log_level` command may change the level for.")
    bundle_chunk_bytes: int = Field(128 * 1024, ge=1024, le=4 * 1024 * 1024, description="Size of each MQTT message of an uploaded diagnostics bundle.")
    max_model_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="Largest model file a model update may deliver.")
    transfer_timeout: float = Field(600.0, gt=0, description="Seconds a chunked model transfer may take from its command to its last chunk.")

    @field_validator("trusted_keys")
    @classmethod
    def _keys(cls, keys: list[str]) -> list[str]:
        for k in keys:
            try:
                raw = base64.b64decode(k, validate=True)
            except ValueError:
                raw = b""
            if len(raw) != 32:
                raise ValueError(
                    f"trusted key {k[:12]!r}... is not an Ed25519 public key: give base64 of its 32 raw bytes (`edge-agent remote keygen` prints one)"
                )
        return keys
