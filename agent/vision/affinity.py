"""Which CPUs the vision worker's threads run on.

With inference overlapped (agent.vision.stages), the inference thread keeps
one core busy and the main thread and the camera readers the other. Left to
the kernel, they now and then share a core and move about; on a quiet 2-core
machine that cost a tenth of the small model's rate (docs/benchmarks.md,
Vision pipeline: 0.84 to 0.96 of a bare session.run loop against 0.93 to
0.99 with the inference thread on a CPU of its own).

So the worker gives its inference thread the last CPU it may use and keeps
its other threads (main, readers, which inherit the main thread's CPUs when
started) off it. Only with `onnx_threads = 1`: onnxruntime's own pool threads
for more would still roam. Other processes, the agent included, are not
restricted and may use every CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class CpuPlan:
    inference: frozenset[int]
    rest: frozenset[int]


def cpu_plan(onnx_threads: int) -> CpuPlan | None:
    """The split for this process, or None where there is nothing to split."""
    if onnx_threads != 1 or not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    return CpuPlan(frozenset(cpus[-1:]), frozenset(cpus[:-1]))


def pin_this_thread(cpus: frozenset[int] | set[int]) -> bool:
    """Restrict the calling thread to `cpus`; False where the system refuses
    (a container's CPU set, another OS): the thread then runs anywhere."""
    try:
        os.sched_setaffinity(0, cpus)  # 0: the calling thread, on Linux
        return True
    except (AttributeError, OSError):
        return False
