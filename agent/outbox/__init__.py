"""Durable store-and-forward outbox (SQLite WAL); see docs/storage.md."""

from agent.outbox.outbox import Outbox

# the config model (pydantic) is in agent.outbox.config: the running agent never imports it
__all__ = ["Outbox"]
