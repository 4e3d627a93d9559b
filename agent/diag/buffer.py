"""`diag buffer`: what waits in the outbox, read from its SQLite file read-only.

A read-only WAL reader never blocks the agent's writer and works the same with
the agent stopped. The table layout is agent.outbox.store's.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from agent.outbox.store import EVENT_DEVICE, TQ_SYNCED, VK_BOOL, VK_JSON


def outbox_path(config: Any, data_dir: str) -> str:
    return config.storage.path or os.path.join(data_dir, "outbox.db")


class BufferMissing(Exception):
    pass


def _connect(path: str) -> sqlite3.Connection:
    if not os.path.exists(path):
        raise BufferMissing(f"no outbox at {path}: the agent has not run with this config yet, or [storage] path points elsewhere")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0)
    conn.execute("PRAGMA query_only=1")
    return conn


def summarise(path: str, device: str | None = None) -> dict[str, Any]:
    conn = _connect(path)
    try:
        where, params = ("WHERE device = ?", (device,)) if device else ("", ())
        total, first, last, oldest, newest = conn.execute(f"SELECT COUNT(*), MIN(seq), MAX(seq), MIN(wall), MAX(wall) FROM outbox {where}", params).fetchone()
        per_device = [
            {"device": d, "count": n, "oldest": o, "statuses": s}
            for d, n, o, s in conn.execute(
                f"SELECT device, COUNT(*), MIN(wall), GROUP_CONCAT(DISTINCT status) FROM outbox {where} GROUP BY device ORDER BY COUNT(*) DESC", params
            )
        ]
    finally:
        conn.close()
    return {
        "count": total,
        "first_seq": first,
        "last_seq": last,
        "oldest_wall": oldest,
        "newest_wall": newest,
        "file_bytes": sum(os.path.getsize(path + s) for s in ("", "-wal") if os.path.exists(path + s)),
        "per_device": per_device,
    }


def rows(path: str, after_seq: int, limit: int, device: str | None = None) -> list[dict[str, Any]]:
    if limit <= 0:
        return []
    conn = _connect(path)
    try:
        sql = (
            "SELECT o.seq, o.device, o.metric, o.value, o.vk, o.unit, o.status, o.detail, b.boot_id, o.mono_ns, o.wall, o.tq"
            " FROM outbox o JOIN boots b ON b.id = o.boot WHERE o.seq > ?"
        )
        params: tuple[Any, ...] = (after_seq,)
        if device:
            sql += " AND o.device = ?"
            params += (device,)
        sql += " ORDER BY o.seq LIMIT ?"
        out = []
        for seq, dev, metric, value, vk, unit, status, detail, boot, mono, wall, tq in conn.execute(sql, params + (limit,)):
            if vk == VK_BOOL:
                value = bool(value)
            out.append(
                {
                    "seq": seq,
                    "device": dev,
                    "metric": metric,
                    "value": value,
                    "unit": unit,
                    "status": status,
                    "detail": detail,
                    "boot_id": boot,
                    "mono_ns": mono,
                    "wall": wall,
                    "synced": tq == TQ_SYNCED,
                    "event": dev == EVENT_DEVICE,
                    "json": vk == VK_JSON,
                }
            )
        return out
    finally:
        conn.close()
