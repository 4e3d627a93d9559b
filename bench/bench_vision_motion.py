"""Motion-mode counting accuracy on rendered street clips with exact truth:
per clip and direction, vehicles counted at the centre line against the true
crossings, and the detector's time per frame. The figures in docs/vision.md
(motion mode) come from this script.

    PYTHONPATH=. .venv/bin/python bench/bench_vision_motion.py --seeds 101-116 --seconds 90 --rate 5
    PYTHONPATH=. .venv/bin/python bench/bench_vision_motion.py --seeds 101-116 --seconds 90 --rate 10

Each clip is Poisson traffic in four lanes (StreetScene.random: all classes,
a lamp post, a passing cloud) with the road empty when counting starts,
written as MJPG and read back like a camera file. The detector, tracker and
counting line are the agent's own, run in this process on every frame.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

import cv2

from agent.vision.config import LineConfig, TrackerConfig
from agent.vision.lines import CountingLine
from agent.vision.motion import MotionDetector
from agent.vision.tracker import Tracker
from hil_tests.emulators.scenes import StreetScene
from hil_tests.vision_support import LineTruth


def seeds_arg(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def by_direction(counts: Counter) -> Counter:
    """{(label, "in"/"out"): n} -> {"in": n, "out": n}"""
    out: Counter = Counter()
    for (_, d), n in counts.items():
        out[d] += n
    return out


def count_clip(path: Path, fps: float) -> tuple[Counter, float]:
    """Crossings per direction counted on the clip, and detect ms per frame."""
    cap = cv2.VideoCapture(str(path))
    det = MotionDetector("vehicle", 0.001)
    tracker = Tracker(TrackerConfig())
    line: CountingLine | None = None
    got: Counter = Counter()
    spent, i = 0.0, 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        if line is None:
            line = CountingLine(LineConfig(name="centre", start=(0.5, 1.0), end=(0.5, 0.0)), img.shape[1], img.shape[0])
        t0 = time.perf_counter()
        boxes, scores, labels = det.detect(img)
        spent += time.perf_counter() - t0
        tracks = tracker.update(boxes, scores, labels, i / fps)
        for c in line.update(tracks, i / fps):
            got[c.direction] += 1
        line.forget(tracker.removed)
        i += 1
    return got, 1000 * spent / max(i, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=seeds_arg, default=seeds_arg("101-116"))
    ap.add_argument("--seconds", type=float, default=90)
    ap.add_argument("--rate", type=float, default=5, help="vehicles per lane per minute")
    ap.add_argument("--size", default="480x270")
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    got_all: Counter = Counter()
    truth_all: Counter = Counter()
    req_all: Counter = Counter()  # seen on both sides of the line
    opt_all: Counter = Counter()  # hidden on one side for the whole crossing
    clip_err: Counter = Counter()  # per clip, too many or too few, summed
    ms = []
    print("seed  in counted/true  out counted/true")
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            scene = StreetScene.random(seed=seed, duration_s=args.seconds, fps=10, size=size, per_lane_per_min=args.rate)
            scene.vehicles = [v for v in scene.vehicles if v.t_enter >= 1.0]  # empty road at the start
            path = Path(tmp) / f"{seed}.avi"
            truths = scene.write_video(path)
            truth = Counter("in" if d > 0 else "out" for _, _, d, _ in scene.crossings(size[0] / 2, truths))
            seen = LineTruth(scene, truths, size[0] / 2)
            req, opt = by_direction(seen.required), by_direction(seen.optional)
            req_all.update(req)
            opt_all.update(opt)
            got, per_frame = count_clip(path, scene.fps)
            ms.append(per_frame)
            got_all.update(got)
            for d in ("in", "out"):
                clip_err[d] += max(req[d] - got[d], got[d] - req[d] - opt[d], 0)
            truth_all.update(truth)
            print(
                f"{seed:4d}  {got['in']:3d}/{truth['in']:<3d} {got['in'] - truth['in']:+d}   {got['out']:3d}/{truth['out']:<3d} {got['out'] - truth['out']:+d}",
                flush=True,
            )
    for d in ("in", "out"):
        share = 100 * (got_all[d] - truth_all[d]) / max(truth_all[d], 1)
        print(
            f"total {d}: {got_all[d]}/{truth_all[d]} ({share:+.1f} %); seen on both sides {req_all[d]} (+{opt_all[d]} hidden), "
            f"errors summed per clip {clip_err[d]} ({100 * clip_err[d] / max(req_all[d], 1):.1f} %)"
        )
    print(f"detect: {sum(ms) / len(ms):.2f} ms per {args.size} frame (median clip {sorted(ms)[len(ms) // 2]:.2f})")


if __name__ == "__main__":
    main()
