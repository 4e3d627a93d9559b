"""The agent's handle on one vision worker process (parent side).

Every worker incarnation gets fresh queues: a worker killed half-way through
writing a message leaves a torn message in its pipe, and nobody must read
that pipe again. Results are read by a daemon thread so that even a torn
message can never block the agent's event loop.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.vision.config import CameraConfig, VisionConfig


class WorkerHandle:
    def __init__(self, process: Any, commands: Any, results: Any, heartbeat: Any) -> None:
        self.process = process
        self.commands = commands
        self.results = results
        self.heartbeat = heartbeat
        self.inbox: queue.SimpleQueue[tuple] = queue.SimpleQueue()
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, name="vision-results", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.is_alive()

    def heartbeat_age(self) -> float:
        return time.monotonic() - max(self.heartbeat.value, self.started)

    def send(self, msg: tuple) -> bool:
        try:
            self.commands.put_nowait(msg)
            return True
        except queue.Full:
            return False

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self.results.get(timeout=0.2)
            except queue.Empty:
                if not self.process.is_alive() and self.results.empty():
                    return
                continue
            except (EOFError, OSError):
                return
            self.inbox.put(msg)

    def drain(self, limit: int = 10000) -> list[tuple]:
        out = []
        while len(out) < limit:
            try:
                out.append(self.inbox.get_nowait())
            except queue.Empty:
                break
        return out

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(1.0)
        self._stop.set()
        # the feeder thread must not wait for a dead reader at interpreter exit
        self.commands.cancel_join_thread()
        self.results.cancel_join_thread()


WorkerFactory = Callable[[list[Any], Any, str], "WorkerHandle"]  # (cameras, vision config, data_dir)


def _worker_entry(*args: Any) -> None:
    # Runs in the spawned process. The worker module (NumPy, OpenCV, the
    # config models) is imported there only, never in the agent.
    from agent.vision.worker import worker_main

    worker_main(*args)


def spawn_worker(cameras: list[CameraConfig], vision: VisionConfig, data_dir: str) -> WorkerHandle:
    from agent.config.plain import as_dict

    ctx = mp.get_context("spawn")
    results = ctx.Queue(vision.result_queue_size)
    commands = ctx.Queue(vision.command_queue_size)
    heartbeat = ctx.Value("d", 0.0, lock=False)
    proc = ctx.Process(
        target=_worker_entry,
        args=([as_dict(c) for c in cameras], as_dict(vision), data_dir, results, commands, heartbeat),
        name="vision-worker",
        daemon=True,
    )
    proc.start()
    return WorkerHandle(proc, commands, results, heartbeat)
