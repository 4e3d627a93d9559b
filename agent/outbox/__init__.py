"""Durable store-and-forward outbox (SQLite WAL); see docs/storage.md."""

from agent.outbox.config import StorageConfig
from agent.outbox.outbox import Outbox

__all__ = ["Outbox", "StorageConfig"]
