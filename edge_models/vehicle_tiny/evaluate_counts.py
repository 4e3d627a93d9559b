"""Line counts per class and direction on rendered street clips, against exact truth.

    PYTHONPATH=. .venv/bin/python edge_models/vehicle_tiny/evaluate_counts.py [--clips 21:10 22:10 ...]

Each clip (`seed:vehicles per lane per minute`, 50 s, 640x360, 10 fps) is
written as an MJPG file, read back at 5 fps of media time and analysed by
`CameraPipeline` with the model, exactly as the vision worker does for a file
with `realtime = false`, with one line down the middle of the image. The
truth comes from `hil_tests.vision_support.LineTruth`: crossings of vehicles
seen on both sides of the line are required; those of vehicles never seen on
one side (hidden behind a bus for the whole crossing, on the line when the
clip starts or ends) may be counted or not. Printed per clip: counted /
required (+ optional) for every class and direction that differs, and the
summed absolute errors; at the end the totals, also against every crossing
(the plain truth, optional ones required).
"""

from __future__ import annotations

import argparse
import math
import tempfile
from collections import Counter
from pathlib import Path

import cv2

from agent.vision.config import CameraConfig, LineConfig, VisionConfig
from agent.vision.pipeline import CameraPipeline, model_detector
from hil_tests.emulators.scenes import CLASSES, StreetScene
from hil_tests.vision_support import LineTruth

LINE = LineConfig(name="centre", start=(0.5, 1.0), end=(0.5, 0.0))  # left -> right is "in"
DETECT_FPS = 5.0
KEYS = [(label, d) for label in CLASSES for d in ("in", "out")]


def count_file(path: str, models_dir: str, model: str) -> Counter:
    """Crossings per (label, direction), frames handed over as the worker's file reader does."""
    cam = CameraConfig(name="road", source=path, model=model, realtime=False, detect_fps=DETECT_FPS, lines=[LINE])
    detect, info = model_detector(cam, VisionConfig(models_dir=models_dir, onnx_threads=1))
    with tempfile.TemporaryDirectory() as data_dir:
        pipe = CameraPipeline(cam, data_dir, detect, info)
        cap = cv2.VideoCapture(path)
        fps = cap.get(cv2.CAP_PROP_FPS)
        counts: Counter = Counter()
        index, due = 0, 0.0
        while True:
            t = index / fps
            if t + 1e-6 < due:  # not due at the detection rate: skipped undecoded
                if not cap.grab():
                    break
                index += 1
                continue
            ok, image = cap.read()
            if not ok:
                break
            index += 1
            due += 1.0 / DETECT_FPS
            for _, label, direction, _ in pipe.process(image, t)["crossings"]:
                counts[(label, direction)] += 1
        cap.release()
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models-dir", default="edge_models")
    ap.add_argument("--model", default="vehicle_tiny")
    ap.add_argument("--clips", nargs="+", default=["21:10", "22:10", "23:10", "24:10", "25:10"])
    args = ap.parse_args()
    err = plain_err = required = crossings = 0
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.clips:
            seed, density = (int(spec.split(":")[0]), float(spec.split(":")[1])) if ":" in spec else (int(spec), 10.0)
            scene = StreetScene.random(seed=seed, duration_s=50, fps=10, size=(640, 360), per_lane_per_min=density)
            path = str(Path(tmp) / f"{seed}.avi")
            truths = scene.write_video(path)
            w, h = scene.size
            truth = LineTruth(scene, truths, w / 2, every=round(scene.fps / DETECT_FPS), band=LINE.hysteresis * math.hypot(w, h))
            got = count_file(path, args.models_dir, args.model)
            clip_err = sum(truth.error(k, got[k]) for k in KEYS)
            clip_plain = sum(abs(got[k] - truth.required[k] - truth.optional[k]) for k in KEYS)
            n_req, n_all = sum(truth.required.values()), sum(truth.required.values()) + sum(truth.optional.values())
            diffs = " ".join(
                f"{lab}_{d} {got[(lab, d)]}/{truth.required[(lab, d)]}" + (f"(+{truth.optional[(lab, d)]})" if truth.optional[(lab, d)] else "")
                for lab, d in KEYS
                if got[(lab, d)] != truth.required[(lab, d)]
            )
            print(
                f"seed {seed} ({density:g}/lane/min): {n_req} required (+{n_all - n_req} optional), error {clip_err}, plain truth error {clip_plain}   {diffs}",
                flush=True,
            )
            err, plain_err, required, crossings = err + clip_err, plain_err + clip_plain, required + n_req, crossings + n_all
    print(
        f"total: per class and direction {err} errors in {required} required crossings ({100 * err / max(required, 1):.1f} %); "
        f"against all {crossings} crossings {plain_err} ({100 * plain_err / max(crossings, 1):.1f} %)"
    )


if __name__ == "__main__":
    main()
