"""Disk full on a real (tiny tmpfs) filesystem: keep running, bounded memory, report, recover.

Needs root to mount the tmpfs; skipped otherwise (CI runs as root in its container).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
from pathlib import Path

import pytest

from agent.outbox import Outbox
from agent.outbox.config import StorageConfig
from agent.outbox.store import EVENT_DEVICE
from agent.runtime.clock import Clock

LOG = logging.getLogger("test.disk")


@pytest.fixture
def small_fs(tmp_path: Path):
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs to fill needs root")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True, timeout=30)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)


def test_disk_full_keeps_running_bounded_reports_and_recovers(small_fs: Path):
    clock = Clock("assume")

    async def main() -> dict:
        ob = Outbox(StorageConfig(memory_readings=5000, commit_interval=0.01), data_dir=str(small_fs), clock=clock, log=LOG)
        await ob.open()
        produced = 0
        degraded_seen = None
        for _ in range(300):
            ob.add([clock.reading("meter-1", "active_power", float(produced + k), "W", detail="padding" * 8) for k in range(500)])
            produced += 500
            await ob.flush()
            if ob.stats()["degraded"]:
                degraded_seen = dict(ob.stats())
                break
        assert degraded_seen is not None, "the 1 MiB filesystem never filled up"
        for _ in range(20):  # keeps taking readings while the disk is full
            ob.add([clock.reading("meter-1", "active_power", float(produced + k), "W") for k in range(500)])
            produced += 500
            await ob.flush()
        while_full = dict(ob.stats())
        # space returns
        subprocess.run(["mount", "-o", "remount,size=64m", str(small_fs)], check=True, timeout=30)
        for _ in range(100):  # failing storage is retried once a second
            await ob.flush()
            if not ob.stats()["degraded"] and ob.stats()["pending"] == 0:
                break
            await asyncio.sleep(0.05)
        after = dict(ob.stats())
        rows = await ob.fetch(0, 10_000_000)
        await ob.close()
        return {"degraded": degraded_seen, "while_full": while_full, "after": after, "rows": rows, "produced": produced}

    out = asyncio.run(main())
    full = out["while_full"]
    assert full["degraded"] and ("full" in full["last_error"] or "No space" in full["last_error"])
    assert full["pending"] <= 5000 + 10  # bounded in memory (plus a few events)
    assert full["dropped_by_reason"]["memory"] > 0
    assert not out["after"]["degraded"] and out["after"]["pending"] == 0
    events = {r[2]: json.loads(r[3]) for r in out["rows"] if r[1] == EVENT_DEVICE}
    assert {"storage_degraded", "storage_recovered", "dropped"} <= set(events)
    assert events["dropped"]["reason"] == "memory"
    values = [r[3] for r in out["rows"] if r[1] != EVENT_DEVICE]
    assert values[-1] == float(out["produced"] - 1)  # the newest were kept and committed after recovery
    seqs = [r[0] for r in out["rows"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
