"""[storage] section: the durable outbox."""

from __future__ import annotations

from pydantic import Field

from drivers.config import StrictModel


class StorageConfig(StrictModel):
    path: str = Field("", description="Outbox database file. Empty: outbox.db in the gateway's data_dir.")
    max_bytes: int = Field(256 * 1024 * 1024, ge=1024 * 1024, description="Cap of the outbox on disk; when full the oldest readings are dropped and counted.")
    max_age: float = Field(0, ge=0, description="Drop unsent readings older than this many seconds; 0 keeps them until max_bytes forces a drop.")
    commit_interval: float = Field(0.1, gt=0, le=10, description="Seconds between commits of new readings (a crash loses at most this much).")
    sync_interval: float = Field(1.0, gt=0, description="Seconds between syncs of the write-ahead log to storage (a power cut loses at most this much).")
    memory_readings: int = Field(
        100_000,
        ge=1000,
        description="Readings held in memory while they wait for a commit, or while the disk is full or failing; beyond it the oldest are dropped and counted.",
    )
    seq_block: int = Field(
        1_000_000,
        ge=1000,
        description="Sequence numbers reserved at a time in the high-water-mark file beside the database (one fsync per block).",
    )
