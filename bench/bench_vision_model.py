"""Vision model speed: what the Detector adds over a bare session.run, where the
time goes, and what int8 quantisation buys, for each shipped model.

    PYTHONPATH=. .venv/bin/python bench/bench_vision_model.py [--frames 60] [--rounds 5]

Everything is measured in one run and interleaved (bare run, detect, bare run,
...) so machine noise hits both sides alike; report the ratios, not the
absolute milliseconds. int8 models are written to a temporary folder with
onnxruntime.quantization: dynamic (weights only) and static QDQ (weights and
activations, calibrated on 32 frames of the model's own kind of scene).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from agent.vision.models import Detector, load_detector

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT / "hil_tests" / "media"


def street_frames(n: int) -> list[np.ndarray]:
    from hil_tests.emulators.scenes import StreetScene

    scene = StreetScene.random(20000, duration_s=n / 2 + 1, fps=10, per_lane_per_min=16)
    return [scene.render(2 * i)[0] for i in range(n)]


def video_frames(n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(MEDIA / "vtest.avi"))
    out = []
    while len(out) < n:
        ok, f = cap.read()
        if not ok:
            break
        out.append(f)
    cap.release()
    return out


def med(xs: list[float]) -> float:
    return 1000.0 * float(np.median(xs))


def time_detector(det: Detector, frames: list[np.ndarray], rounds: int) -> dict[str, float]:
    """Median ms of bare session.run and of each Detector stage, interleaved."""
    tensors = [det.preprocess(f) for f in frames]
    bare, full, pre, run, post = [], [], [], [], []
    for _ in range(rounds):
        for f, (x, _tf) in zip(frames, tensors, strict=True):
            t0 = time.perf_counter()
            det.session.run(det.output_names, {det.input_name: x})
            bare.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            det.detect(f)
            full.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            x2, tf = det.preprocess(f)
            t1 = time.perf_counter()
            outs = det.run(x2)
            t2 = time.perf_counter()
            det.postprocess(outs, tf)
            t3 = time.perf_counter()
            pre.append(t1 - t0), run.append(t2 - t1), post.append(t3 - t2)
    return {"bare": med(bare), "detect": med(full), "pre": med(pre), "run": med(run), "post": med(post)}


def thread_scaling(folder: Path, frames: list[np.ndarray], rounds: int) -> str:
    """Bare session.run with 1 thread vs 2 threads (spinning off), interleaved."""
    one, two = load_detector(folder, threads=1), load_detector(folder, threads=2)
    xs = [one.preprocess(f)[0] for f in frames]
    t1, t2 = [], []
    for _ in range(rounds):
        for x in xs:
            for det, acc in ((one, t1), (two, t2)):
                t0 = time.perf_counter()
                det.run(x)
                acc.append(time.perf_counter() - t0)
    return f"bare run 1 thread {med(t1):.2f} ms, 2 threads {med(t2):.2f} ms (speed-up x{med(t1) / med(t2):.2f})"


def quantised_copy(folder: Path, mode: str, frames: list[np.ndarray], tmp: Path) -> Path:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_dynamic,
        quantize_static,
    )

    out = tmp / f"{folder.name}_{mode}"
    shutil.copytree(folder, out)
    src = folder / "model.onnx"
    prep = tmp / f"{folder.name}_prep.onnx"
    if not prep.exists():
        quant_pre_process(str(src), str(prep), skip_symbolic_shape=True)
    dst = out / "model.onnx"
    if mode == "dynamic":
        quantize_dynamic(str(prep), str(dst), weight_type=QuantType.QInt8)
    else:
        det = Detector(folder, warmup=False)

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self.it = iter([{det.input_name: det.preprocess(f)[0]} for f in frames[:32]])

            def get_next(self):
                return next(self.it, None)

        quantize_static(
            str(prep), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8
        )
    text = (out / "manifest.toml").read_text()
    old = Detector(folder, warmup=False).manifest.model.sha256
    (out / "manifest.toml").write_text(text.replace(old, hashlib.sha256(dst.read_bytes()).hexdigest()))
    return out


def agreement(a: Detector, b: Detector, frames: list[np.ndarray]) -> str:
    """How many of model a's detections model b reproduces (IoU >= 0.5, same label)."""

    def iou(p, q) -> float:
        ix = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
        iy = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
        u = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - ix * iy
        return ix * iy / u if u > 0 else 0.0

    na = nb = same = 0
    for f in frames:
        da, db = a.detect(f), b.detect(f)
        na, nb = na + len(da), nb + len(db)
        same += sum(1 for x in da if any(x.label == y.label and iou(x.box, y.box) >= 0.5 for y in db))
    return f"{same}/{na} of fp32's detections kept, {nb - same} new"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", nargs="+", default=["vehicle_tiny", "person_ssdlite"])
    ap.add_argument("--no-int8", action="store_true", help="skip the quantised variants")
    a = ap.parse_args()
    make = {"vehicle_tiny": street_frames, "person_ssdlite": video_frames}
    sources = {m: make.get(m, video_frames)(a.frames) for m in a.models}  # other models: vtest.avi frames
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        for name, frames in sources.items():
            folder = ROOT / "edge_models" / name
            h, w = frames[0].shape[:2]
            print(f"\n## {name}  ({len(frames)} frames {w}x{h}, {a.rounds} rounds, {a.threads} thread(s))")
            print(thread_scaling(folder, frames, a.rounds))
            print("variant        size MB  bare run  detect  detect/bare  preprocess  run   postprocess   vs fp32")
            fp32 = load_detector(folder, threads=a.threads)
            variants = [("fp32", folder)]
            for mode in () if a.no_int8 else ("dynamic", "static"):
                try:
                    variants.append((f"int8 {mode}", quantised_copy(folder, mode, frames, tmp)))
                except Exception as e:  # noqa: BLE001 -- report, do not hide: some graphs do not quantise
                    print(f"int8 {mode}: quantisation failed: {type(e).__name__}: {str(e)[:160]}")
            for label, path in variants:
                try:
                    det = fp32 if label == "fp32" else load_detector(path, threads=a.threads)
                    r = time_detector(det, frames, a.rounds)
                except Exception as e:  # noqa: BLE001 -- a quantised graph onnxruntime cannot run is a result
                    print(f"{label:13s}  cannot run: {type(e).__name__}: {str(e)[:160]}")
                    continue
                size = (path / "model.onnx").stat().st_size / 1e6
                agree = "-" if label == "fp32" else agreement(fp32, det, frames)
                print(
                    f"{label:13s}  {size:7.2f}  {r['bare']:8.2f}  {r['detect']:6.2f}  {r['detect'] / r['bare']:11.2f}"
                    f"  {r['pre']:10.2f}  {r['run']:5.2f}  {r['post']:11.2f}   {agree}"
                )


if __name__ == "__main__":
    main()
