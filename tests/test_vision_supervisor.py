"""VisionSupervisor with a fake worker factory: restart rate limit, outage
reported as offline counts, requests failing with advice when no worker runs."""

from __future__ import annotations

import asyncio
import logging

import pytest

from agent.readings import OFFLINE, Reading
from agent.runtime.clock import Clock
from agent.vision.config import CameraConfig, LineConfig, VisionConfig
from agent.vision.supervisor import VisionSupervisor

CAM = CameraConfig(name="cam1", source="/dev/video0", mode="motion", lines=[LineConfig(name="l1", start=(0.5, 1), end=(0.5, 0))], report_interval=0.3)


class DeadProcess:
    pid = 4242
    exitcode = 1

    def is_alive(self) -> bool:
        return False


class DeadWorker:
    """A worker that crashes at once, every time."""

    def __init__(self) -> None:
        self.process = DeadProcess()
        self.pid = self.process.pid

    def alive(self) -> bool:
        return False

    def drain(self) -> list:
        return []

    def heartbeat_age(self) -> float:
        return 0.0

    def send(self, msg: tuple) -> bool:
        return False

    def kill(self) -> None:
        pass


def make(vision: VisionConfig, started: list, readings: list[Reading]) -> VisionSupervisor:
    def factory(cameras, vision, data_dir):
        started.append(len(cameras))
        return DeadWorker()

    return VisionSupervisor(
        [CAM], vision, stamp=Clock("assume").reading, emit=readings.extend, log=logging.getLogger("test.vs"), data_dir=".", worker_factory=factory
    )


def test_crashing_worker_is_restarted_at_most_max_restarts_per_window(caplog) -> None:
    started: list = []
    readings: list[Reading] = []
    vs = make(VisionConfig(max_restarts=3, restart_window=3600, restart_delay=0.0), started, readings)

    async def scenario() -> None:
        task = asyncio.create_task(vs.run())
        for _ in range(100):  # the rate limit holds however long we look
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    with caplog.at_level(logging.ERROR, logger="test.vs"):
        asyncio.run(scenario())
    assert len(started) == 3
    assert vs.restarts == 3 and "exited with code 1" in vs.last_error
    assert any("waiting" in r.getMessage() and "before the next try" in r.getMessage() for r in caplog.records)
    # the outage is reported as such, never as zero traffic
    counts = [r for r in readings if r.metric.startswith("vehicles_")]
    assert counts and all(r.status == OFFLINE and r.value is None for r in counts)


def test_snapshot_without_a_worker_says_what_to_check() -> None:
    vs = make(VisionConfig(), [], [])
    with pytest.raises(RuntimeError, match="diag status"):
        asyncio.run(vs.snapshot("cam1", blur_people=True))
    with pytest.raises(LookupError, match="configured: cam1"):
        asyncio.run(vs.snapshot("nope", blur_people=True))
    with pytest.raises(ValueError, match="'empty' or 'full'"):
        asyncio.run(vs.record_reference("cam1", "bin1", "half"))
