"""Helpers for the vision end-to-end tests: rendered clips with known truth,
and a run of the real VisionSupervisor (spawned worker, real video decoding)
until every camera's file has been analysed."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from agent.readings import Reading
from agent.runtime.clock import Clock
from agent.vision.config import CameraConfig, VisionConfig
from agent.vision.supervisor import VisionSupervisor
from hil_tests.emulators.scenes import CLASSES, LANES, StreetScene, make_vehicle

REPO = Path(__file__).resolve().parents[1]
MODELS = str(REPO / "edge_models")
MEDIA = REPO / "hil_tests" / "media"


def separated_traffic(n: int, seed: int, *, gap_s: float = 2.4, size: tuple[int, int] = (480, 270), fps: float = 10.0) -> StreetScene:
    """`n` vehicles of every class, both directions, speeds across each class's
    range, crossing the image centre one at a time (`gap_s` apart): what a
    blob counter can be expected to count exactly. The pole still hides
    each of them for a moment near the centre."""
    rng = np.random.default_rng(seed)
    probe = StreetScene([], duration_s=1, fps=fps, size=size, seed=seed)
    vehicles = []
    for i in range(n):
        v = make_vehicle(i + 1, CLASSES[i % len(CLASSES)], int(rng.integers(len(LANES))), 0.0, rng=rng)
        _, t0, t1 = probe._span(v)
        t_cross = 1.5 + i * gap_s
        vehicles.append(make_vehicle(v.track_id, v.cls, v.lane, t_cross - (t1 - t0) / 2, v.speed, rng=np.random.default_rng(i)))
    end = max(probe._span(v)[2] for v in vehicles)
    return StreetScene(vehicles, duration_s=min(end, 1.5 + n * gap_s + 2.0), fps=fps, size=size, seed=seed)


def truth_counts(scene: StreetScene, truths: list, line_x: float) -> Counter:
    """Crossings of the vertical line per (label, "in"/"out"); left->right is in."""
    return Counter((label, "in" if d > 0 else "out") for _, label, d, _ in scene.crossings(line_x, truths))


MIN_VISIBLE = 0.35  # as in the model's evaluation: less visible is neither required nor a false alarm


class LineTruth:
    """True crossings of a vertical line per (label, "in"/"out"), split into
    those a camera can count and those it cannot be asked to.

    A crossing is `required` when the vehicle is seen (at least 35 % visible)
    on both sides of the line, beyond the counter's dead band, in frames the
    counter analyses. The others are `optional`: a car hidden behind a bus
    for its whole crossing, or one still on the line when the clip starts or
    ends. Counting them is not an error and missing them is not either."""

    def __init__(self, scene: StreetScene, truths: list, line_x: float, *, every: int = 1, band: float = 0.0) -> None:
        seen: dict[int, set[int]] = {}
        for frame in truths[::every]:
            for o in frame.objects:
                cx = (o.box[0] + o.box[2]) / 2
                if o.visible >= MIN_VISIBLE and abs(cx - line_x) > band:
                    seen.setdefault(o.track_id, set()).add(1 if cx > line_x else -1)
        self.required: Counter = Counter()
        self.optional: Counter = Counter()
        for track_id, label, d, _ in scene.crossings(line_x, truths):
            key = (label, "in" if d > 0 else "out")
            (self.required if len(seen.get(track_id, ())) == 2 else self.optional)[key] += 1

    def keys(self) -> set[tuple[str, str]]:
        return set(self.required) | set(self.optional)

    def error(self, key: tuple[str, str], got: int) -> int:
        """Vehicles counted too few or too many for `key` (label, direction)."""
        return max(self.required[key] - got, got - self.required[key] - self.optional[key], 0)


class Run:
    def __init__(self, readings: list[Reading], supervisor: VisionSupervisor) -> None:
        self.readings = readings
        self.vs = supervisor
        self.status = supervisor.status()

    def counts(self, camera: str | None = None) -> Counter:
        """Summed crossings per (metric, detail) over all intervals."""
        c: Counter = Counter()
        for r in self.readings:
            if r.metric.endswith(("_in", "_out")) and r.ok and (camera is None or r.device == camera):
                c[(r.metric, r.detail)] += int(r.value)  # type: ignore[arg-type]
        return c

    def latest(self, metric: str, detail: str) -> Any:
        vals = [r.value for r in self.readings if r.metric == metric and r.detail == detail and r.ok]
        return vals[-1] if vals else None


def supervisor(cameras: list[CameraConfig], data_dir: str, readings: list[Reading], *, vision: VisionConfig | None = None) -> VisionSupervisor:
    """The agent's vision supervisor for these cameras, its readings appended to `readings`."""
    return VisionSupervisor(
        cameras,
        vision or VisionConfig(models_dir=MODELS),
        stamp=Clock("assume").reading,
        emit=readings.extend,
        log=logging.getLogger("test.vision"),
        data_dir=data_dir,
    )


async def run_files(cameras: list[CameraConfig], data_dir: str, *, vision: VisionConfig | None = None, limit_s: float = 240.0) -> Run:
    """Run the supervisor until every camera's file is finished (bounded)."""
    readings: list[Reading] = []
    vs = supervisor(cameras, data_dir, readings, vision=vision)
    task = asyncio.create_task(vs.run())
    try:
        for _ in range(int(limit_s / 0.1)):
            if vs.finished >= {c.name for c in cameras}:
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"cameras not finished after {limit_s} s: {vs.status()}")
        vs.flush()
        run = Run(readings, vs)
    finally:
        await vs.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return run


class WorkerOutput:
    """The vision worker's result queue, kept in a list (the worker's camera
    path run in-process, without the spawned worker and its queues)."""

    dropped = 0

    def __init__(self) -> None:
        self.msgs: list[tuple] = []

    def send(self, msg: tuple) -> None:
        self.msgs.append(msg)

    def events(self, camera: str) -> list[tuple]:
        """Counts and zone changes of a camera in order, without capture times."""
        return [m[:-1] for m in self.msgs if m[0] in ("count", "zone") and m[1] == camera]


class Heartbeat:
    """Stands in for the shared heartbeat value the supervisor watches."""

    value = 0.0
