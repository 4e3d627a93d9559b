"""Vision pipeline throughput: the worker's real camera path against a bare
`session.run` loop on the same model and frames, the latency the overlap of
stages adds, where each thread's CPU goes, and the live worker's frame ->
count latency and memory.

    PYTHONPATH=. .venv/bin/python bench/bench_vision_pipeline.py [--model vehicle_tiny] [--frames 300] [--rounds 3]

Blocks alternate in one run (bare, pipelined, serial, then the next round in
a rotated order) so the machine's noise hits all alike; per round the ratio
pipelined / bare is the result, not the absolute milliseconds. For each block
it also tells how many cores other processes kept busy meanwhile: on a shared
2-core machine a round disturbed by them says little about the pipeline,
which needs both cores where the bare loop needs one.
- bare: `session.run` on every frame's tensor, prepared beforehand;
- pipelined: the worker's path as the worker runs it (agent.vision.worker
  build_cameras + agent.vision.scheduler, inference thread on a CPU of its
  own as in the worker): the reader thread decoding the
  file, preprocessing, inference on the inference thread, output decoding and
  NMS, tracker, counting line; every frame of the file (realtime = false,
  detect_fps = the clip's rate), timed from opening the file to the last
  frame's events;
- serial: the same with overlap=False (every step in a row on one thread),
  for the record.
Frames: a rendered street clip (640x360 MJPG), the view the vehicle model is
made for; the person model runs on the same frames (its speed does not depend
on what it sees).
The last part runs the real spawned worker through the VisionSupervisor on
the same clip as a camera (realtime, 5 fps detection).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

import cv2

from agent.runtime.clock import Clock
from agent.vision.config import CameraConfig, LineConfig, VisionConfig
from agent.vision.pipeline import Ema, model_detector
from agent.vision.scheduler import Scheduler
from agent.vision.supervisor import VisionSupervisor
from agent.vision.worker import build_cameras, tune_process
from hil_tests.emulators.scenes import StreetScene
from hil_tests.vision_support import Heartbeat, WorkerOutput

ROOT = Path(__file__).resolve().parents[1]
MODELS = str(ROOT / "edge_models")
LINE = LineConfig(name="centre", start=(0.5, 1.0), end=(0.5, 0.0))
QUIET_CORES = 0.1


class Mean(Ema):
    """A stage's moving average that also keeps the mean over every frame."""

    def __init__(self) -> None:
        super().__init__()
        self.total, self.count = 0.0, 0

    def add(self, ms: float) -> None:
        super().add(ms)
        self.total += ms
        self.count += 1


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def machine_busy_s() -> float:
    """CPU seconds all processes have used (all cores), from /proc/stat."""
    with open("/proc/stat") as fh:
        v = [int(x) for x in fh.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")  # less idle and iowait


def block(fn, *args, **kw) -> dict:
    """Run one block; adds how many cores other processes kept busy meanwhile."""
    busy0, own0, t0 = machine_busy_s(), time.process_time(), time.perf_counter()
    r = fn(*args, **kw)
    wall = time.perf_counter() - t0
    r["others"] = max(machine_busy_s() - busy0 - (time.process_time() - own0), 0.0) / wall
    return r


def bare(run, tensors: list) -> dict:
    t0 = time.perf_counter()
    for x in tensors:
        run(x)
    return {"s": time.perf_counter() - t0, "n": len(tensors)}


def worker_path(cam: CameraConfig, vision: VisionConfig, data_dir: str, overlap: bool) -> dict:
    """Every frame of the clip through build_cameras + Scheduler, as in the worker."""
    log = logging.getLogger("bench")
    cams = build_cameras(vision, [cam], data_dir, log, Heartbeat())
    c = cams[0]
    c.analysis_ms = collections.deque()  # every frame's latency, not only the status's last 100
    c.pipe.stage_ms = {k: Mean() for k in c.pipe.stage_ms}
    out = WorkerOutput()
    sched = Scheduler(cams, out, log, overlap=overlap, pin=True, onnx_threads=vision.onnx_threads)  # as worker_main makes it
    cpu0 = {"all": time.process_time(), "main": time.thread_time()}
    t0 = time.perf_counter()
    c.source.start()
    sched.run_to_end()
    s = time.perf_counter() - t0
    cpu = {"main": time.thread_time() - cpu0["main"]}
    if sched.stage is not None:  # a new thread per block: all its time is this block's
        cpu["inference"] = time.clock_gettime(time.pthread_getcpuclockid(sched.stage._thread.ident))  # type: ignore[arg-type]
    # the reader thread has ended with its file: the rest of the process's time is its
    cpu["reader"] = time.process_time() - cpu0["all"] - sum(cpu.values())
    c.source.stop()
    sched.close()
    stages = {k: v.total / v.count for k, v in c.pipe.stage_ms.items() if v.count}
    crossings = [m[2:5] for m in out.msgs if m[0] == "count"]
    return {"s": s, "n": c.analysed, "latency": statistics.median(c.analysis_ms), "stages": stages, "cpu": cpu, "crossings": crossings}


async def live_worker(cam: CameraConfig, vision: VisionConfig, seconds: float) -> dict:
    vs = VisionSupervisor([cam], vision, stamp=Clock("assume").reading, emit=lambda r: None, log=logging.getLogger("bench"), data_dir=tempfile.gettempdir())
    task = asyncio.create_task(vs.run())
    rss = []
    try:
        for _ in range(600):
            if vs.worker_ready and vs.status()[cam.name].get("frames_analysed", 0) > 5:
                break
            await asyncio.sleep(0.1)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await asyncio.sleep(0.5)
            if vs.handle:
                rss.append(rss_mb(vs.handle.pid))
        lat = sorted(vs.latency_ms)
        st = vs.status()[cam.name]
        return {
            "fps": st.get("fps"),
            "slots_missed": st.get("slots_missed"),
            "frames_dropped": st.get("frames_dropped"),
            "counted": vs.counted,
            "latency_p50": lat[len(lat) // 2] if lat else None,
            "latency_max": lat[-1] if lat else None,
            "analysis_ms": st.get("analysis_ms"),
            "rss_mb": max(rss) if rss else None,
            "stage_ms": st.get("stage_ms"),
        }
    finally:
        await vs.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="vehicle_tiny")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--live-seconds", type=float, default=20.0)
    ap.add_argument("--no-serial", action="store_true", help="skip the serial blocks (faster on slow models)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-vision-"))
    clip = tmp / "street.avi"
    fps = 10.0
    scene = StreetScene.random(seed=7, duration_s=args.frames / fps, fps=fps, size=(640, 360), per_lane_per_min=10)
    scene.write_video(str(clip))
    cap = cv2.VideoCapture(str(clip))
    frames = []
    t0 = time.perf_counter()
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    decode_ms = (time.perf_counter() - t0) / max(len(frames), 1) * 1000

    vision = VisionConfig(models_dir=MODELS)
    tune_process(vision)  # as the worker process is set up
    # every frame analysed: detect_fps equal to the clip's rate
    cam = CameraConfig(name="bench", source=str(clip), model=args.model, realtime=False, detect_fps=fps, lines=[LINE])
    model, _ = model_detector(cam, vision)  # the session and threshold the worker's camera gets
    tensors = [model.prepare(f)[0] for f in frames]

    kinds = ["bare", "pipelined"] + ([] if args.no_serial else ["serial"])
    res: dict[str, list[dict]] = {k: [] for k in kinds}
    for r in range(args.rounds):
        for kind in kinds[r % len(kinds) :] + kinds[: r % len(kinds)]:
            if kind == "bare":
                res[kind].append(block(bare, model.infer, tensors))
            else:
                res[kind].append(block(worker_path, cam, vision, str(tmp), overlap=kind == "pipelined"))

    def fps_of(x: dict) -> float:
        return x["n"] / x["s"]

    n = len(frames)
    print(
        f"model {args.model}, {n} frames 640x360, onnx threads {vision.onnx_threads}, {args.rounds} rounds of alternating blocks, load average {os.getloadavg()}"
    )
    for kind in kinds:
        f = statistics.median(fps_of(x) for x in res[kind])
        print(f"{kind:10s} {f:7.1f} fps ({1000 / f:.2f} ms/frame)   per round: {', '.join(f'{fps_of(x):.1f}' for x in res[kind])}")
        others = ", ".join(f"{x['others']:.2f}" for x in res[kind])
        print(f"{'':10s} cores busy with other processes meanwhile: {others}")
    for kind in kinds[1:]:
        ratios = [fps_of(p) / fps_of(b) for p, b in zip(res[kind], res["bare"], strict=True)]
        print(f"ratio {kind} / bare: median {statistics.median(ratios):.3f}   per round: {', '.join(f'{x:.3f}' for x in ratios)}")
        # a round whose blocks ran while other processes held a core says more about them than about the pipeline
        quiet = [r for r, p, b in zip(ratios, res[kind], res["bare"], strict=True) if max(p["others"], b["others"]) < QUIET_CORES]
        if quiet:
            print(f"{'':10s} rounds with other processes under {QUIET_CORES} core in both blocks: {len(quiet)}, median {statistics.median(quiet):.3f}")
    counts = {kind: [len(x["crossings"]) for x in res[kind]] for kind in kinds[1:]}
    same = all(x["crossings"] == res["pipelined"][0]["crossings"] for kind in kinds[1:] for x in res[kind])
    print(f"crossings per block: {counts}; identical in every block and both paths: {same}")
    for kind in kinds[1:]:
        lat = statistics.median(x["latency"] for x in res[kind])
        print(f"{kind:10s} frame taken -> events: median {lat:.2f} ms")
    if "serial" in res:
        added = statistics.median(p["latency"] - s["latency"] for p, s in zip(res["pipelined"], res["serial"], strict=True))
        print(f"latency added by the overlap (all frames queued, as when counting a file): {added:+.2f} ms per frame")
    for kind in kinds[1:]:
        st = {k: statistics.median(x["stages"].get(k, 0.0) for x in res[kind]) for k in res[kind][0]["stages"]}
        cpu = {k: statistics.median(x["cpu"].get(k, 0.0) for x in res[kind]) / n * 1000 for k in res[kind][0]["cpu"]}
        print(f"{kind:10s} stage ms (mean over frames): " + ", ".join(f"{k} {v:.2f}" for k, v in st.items()))
        print(f"{kind:10s} CPU ms per frame by thread: " + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items()))
    print(f"decode of one frame alone: {decode_ms:.2f} ms; bare run: {1000 / statistics.median(fps_of(x) for x in res['bare']):.2f} ms")

    if args.live_seconds > 0:
        live_cam = CameraConfig(name="live", source=str(clip), model=args.model, loop=True, realtime=True, detect_fps=5, lines=[LINE])
        live = asyncio.run(live_worker(live_cam, vision, args.live_seconds))
        print(
            f"live worker (clip as a 10 fps camera, 5 fps detection, {args.live_seconds:.0f} s): analysed {live['fps']} fps, "
            f"slots missed {live['slots_missed']}, frames dropped by reader {live['frames_dropped']} (expected: half), "
            f"frame taken -> events {live['analysis_ms']} ms"
        )
        if live["latency_p50"] is not None:
            print(f"frame -> count latency over {live['counted']} crossings: p50 {live['latency_p50']:.0f} ms, max {live['latency_max']:.0f} ms")
        print(f"worker RSS {live['rss_mb']:.0f} MB; worker stage ms {live['stage_ms']}")


if __name__ == "__main__":
    main()
