"""Vision pipeline speed: what the whole camera pipeline (decode, preprocess,
inference, decode of outputs, tracking, lines) achieves against a bare
`session.run` loop on the same model and frames, the time per stage, the
latency from a frame to its count, and the worker's memory.

    PYTHONPATH=. .venv/bin/python bench/bench_vision_pipeline.py [--model vehicle_tiny] [--frames 120] [--rounds 3]

Measured in one run, interleaved (bare, pipeline, bare, pipeline, ...) so the
machine's noise hits both alike; the ratio is the result, not the absolute
milliseconds. Frames: a rendered street clip (640x360 MJPG), the camera view
the vehicle model is made for.
Part 3 runs the real spawned worker through the VisionSupervisor on the same
clip as a camera (realtime, 5 fps detection) and reports frame -> count
latency and the worker's RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from pathlib import Path

import cv2

from agent.runtime.clock import Clock
from agent.vision.config import CameraConfig, LineConfig, VisionConfig
from agent.vision.models import load_detector
from agent.vision.pipeline import CameraPipeline, model_detector
from agent.vision.sources import FrameSource
from agent.vision.supervisor import VisionSupervisor
from hil_tests.emulators.scenes import StreetScene

ROOT = Path(__file__).resolve().parents[1]
MODELS = str(ROOT / "edge_models")
LINE = LineConfig(name="centre", start=(0.5, 1.0), end=(0.5, 0.0))


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def interleaved(det, tensors: list, cam: CameraConfig, vision: VisionConfig) -> tuple[float, float, dict[str, float]]:
    """Per frame: one bare session.run on the prepared tensor, then the same
    frame through FrameSource (decoded by its reader thread, as in the worker)
    and CameraPipeline.process. Returns (bare fps, pipeline fps, stage ms)."""
    detect, info = model_detector(cam, vision)
    pipe = CameraPipeline(cam, tempfile.gettempdir(), detect, info)
    src = FrameSource(cam, logging.getLogger("bench"))
    src.start()
    bare_s = pipe_s = 0.0
    n = 0
    while n < len(tensors):
        t0 = time.perf_counter()
        det.run(tensors[n])
        t1 = time.perf_counter()
        f = src.take()
        while f is None and not src.finished:
            time.sleep(0.0002)
            f = src.take()
        if f is None:
            break
        pipe.process(f.image, f.t)
        t2 = time.perf_counter()
        bare_s += t1 - t0
        pipe_s += t2 - t1
        n += 1
    src.stop()
    stages = {k: v.value for k, v in pipe.stage_ms.items() if v.value is not None}
    return n / bare_s, n / pipe_s, stages


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
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--live-seconds", type=float, default=20.0)
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
    det = load_detector(args.model, models_dir=MODELS, threads=vision.onnx_threads)
    tensors = [det.preprocess(f)[0] for f in frames]
    # every frame analysed: detect_fps equal to the clip's rate
    cam = CameraConfig(name="bench", source=str(clip), model=args.model, realtime=False, detect_fps=fps, lines=[LINE])

    bare, piped, stages = [], [], []
    for _ in range(args.rounds):
        b, p, st = interleaved(det, tensors, cam, vision)
        bare.append(b)
        piped.append(p)
        stages.append(st)
    b, p = statistics.median(bare), statistics.median(piped)
    print(f"model {args.model}, {len(frames)} frames 640x360, onnx threads {vision.onnx_threads}, {args.rounds} rounds interleaved frame by frame")
    print(f"bare session.run         {b:7.1f} fps  ({1000 / b:.1f} ms)")
    print(f"pipeline (decode..lines) {p:7.1f} fps  ({1000 / p:.1f} ms)   ratio {p / b:.2f}  (per round: {', '.join(f'{x / y:.2f}' for x, y in zip(piped, bare, strict=True))})")
    med = {k: statistics.median(s_.get(k, 0.0) for s_ in stages) for k in stages[0]}
    print(f"per stage (ms): decode {decode_ms:.1f} (reader thread), detect = preprocess + run + outputs/NMS {med.get('detect', 0):.1f}, "
          f"track {med.get('track', 0):.2f}, lines {med.get('count', 0):.2f}")

    live_cam = CameraConfig(name="live", source=str(clip), model=args.model, loop=True, realtime=True, detect_fps=5, lines=[LINE])
    res = asyncio.run(live_worker(live_cam, vision, args.live_seconds))
    print(f"live worker (clip as a 10 fps camera, 5 fps detection, {args.live_seconds:.0f} s): analysed {res['fps']} fps, "
          f"slots missed {res['slots_missed']}, frames dropped by reader {res['frames_dropped']} (expected: half, 10 fps in, 5 fps used)")
    print(f"frame -> count latency over {res['counted']} crossings: p50 {res['latency_p50']:.0f} ms, max {res['latency_max']:.0f} ms" if res["latency_p50"] else "no crossings")
    print(f"worker RSS {res['rss_mb']:.0f} MB; worker stage ms {res['stage_ms']}")


if __name__ == "__main__":
    main()
