"""The inference stage of the vision worker: one thread that runs the models
while the worker's main thread prepares the next frame and finishes the
previous one.

Why a thread pays off although Python has one interpreter lock:
onnxruntime releases the lock for the whole of `session.run`, and OpenCV
releases it in resizing and video decoding. So while frame N is in
inference on one core, the main thread letterboxes frame N+1 and decodes,
tracks and counts frame N-1 on the other. Serially those steps cost 1 to 3 ms
a frame on top of inference; overlapped they cost nothing as long as they take
less time than inference itself.

The hand-off is bounded: at most `depth` jobs wait while one runs. The worker
takes a frame from a camera only when there is room, so a camera faster than
the model does not build a backlog here: its reader keeps only the newest
frame and counts the ones overwritten, and the worker counts missed slots.

One thread for all cameras and all models: jobs run one at a time in the
order they were submitted, so a camera's frames come back in order, a
session shared by several cameras is never entered twice at once, and the
`onnx_threads` budget holds as it did when inference ran in the main loop.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from agent.vision.affinity import pin_this_thread

RunFn = Callable[[np.ndarray], list[np.ndarray]]


@dataclass(eq=False)
class Job:
    """One frame between its preparation and its results."""

    owner: Any  # the worker's camera the frame belongs to
    image: np.ndarray
    t: float  # the frame's time (media or monotonic seconds), as the tracker sees it
    captured: float  # monotonic seconds when the reader received it
    tensor: np.ndarray
    transform: Any  # agent.vision.preprocess.Transform: model input -> frame pixels
    run: RunFn  # the model's session.run for this tensor
    taken: float  # monotonic seconds when it left its reader (its preparation began)
    prepare_ms: float
    outputs: list[np.ndarray] | None = None
    error: BaseException | None = None
    infer_ms: float = 0.0


class InferenceStage:
    """A daemon thread running submitted jobs in order (FIFO)."""

    def __init__(self, depth: int = 1, cpus: frozenset[int] | None = None) -> None:
        self.depth = depth
        self.cpus = cpus  # where the thread runs (agent.vision.affinity); None: anywhere
        self._cond = threading.Condition()
        self._waiting: collections.deque[Job] = collections.deque()
        self._done: collections.deque[Job] = collections.deque()
        self._running: Job | None = None
        self._busy_since: float | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._serve, name="vision-inference", daemon=True)
        self._thread.start()

    # --- main thread ---------------------------------------------------
    def has_room(self) -> bool:
        with self._cond:
            return len(self._waiting) < self.depth

    def submit(self, job: Job) -> None:
        with self._cond:
            if len(self._waiting) >= self.depth:
                # callers check has_room() first; growing here would hide a scheduling bug as latency
                raise RuntimeError("inference hand-off is full")
            self._waiting.append(job)
            self._cond.notify_all()

    def completed(self) -> list[Job]:
        """Jobs whose inference is over (outputs or error), oldest first."""
        with self._cond:
            out = list(self._done)
            self._done.clear()
            return out

    def pending(self) -> int:
        """Jobs submitted and not yet collected with completed()."""
        with self._cond:
            return len(self._waiting) + (self._running is not None) + len(self._done)

    def wait(self, timeout: float) -> None:
        """Until a job completes or `timeout` seconds pass."""
        with self._cond:
            if not self._done:
                self._cond.wait(timeout)

    def heartbeat(self, now: float) -> float:
        """The time the worker's heartbeat may claim: `now`, or when the
        inference in progress started. A session.run that hangs thus stops
        the heartbeat although the main loop keeps turning, and the
        supervisor kills and restarts the worker as it did when inference ran
        in the main loop."""
        since = self._busy_since
        return now if since is None else min(now, since)

    def stop(self, timeout: float = 0.5) -> None:
        """Drop the jobs not started and end the thread. A run in progress
        cannot be interrupted: the thread is a daemon and does not hold up
        the process's exit."""
        with self._cond:
            self._stopping = True
            self._waiting.clear()
            self._cond.notify_all()
        self._thread.join(timeout)

    # --- inference thread ----------------------------------------------
    def _serve(self) -> None:
        if self.cpus:
            pin_this_thread(self.cpus)
        while True:
            with self._cond:
                while not self._waiting and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                job = self._running = self._waiting.popleft()
                self._busy_since = t0 = time.monotonic()
            try:
                job.outputs = job.run(job.tensor)
            except Exception as exc:  # noqa: BLE001 - reported by the main thread as the frame's analysis error
                job.error = exc
            with self._cond:
                job.infer_ms = (time.monotonic() - t0) * 1000
                self._busy_since = None
                self._running = None
                self._done.append(job)
                self._cond.notify_all()
