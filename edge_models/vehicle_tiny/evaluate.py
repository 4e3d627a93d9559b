"""Precision and recall of a vehicle model on held-out rendered street scenes.

    PYTHONPATH=. .venv/bin/python edge_models/vehicle_tiny/evaluate.py [--model edge_models/vehicle_tiny]

Runs the model exactly as the agent does (agent.vision.models.Detector on full
640x360 BGR frames) on clips whose seeds were never used for training
(10000 + k), and matches detections to ground truth greedily by score at
IoU >= 0.5. Objects less than 35 % visible (behind a bus, half out of frame)
are "don't care": finding them is not rewarded, and a detection on them is not
a false positive.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from agent.vision.models import load_detector
from hil_tests.emulators.scenes import CLASSES, StreetScene

MIN_VISIBLE = 0.35


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def evaluate(model: str, clips: int, clip_s: float, every: int, threshold: float | None, iou_min: float = 0.5) -> dict:
    det = load_detector(model, threads=1, score_threshold=threshold)
    stats = {c: {"tp": 0, "fp": 0, "fn": 0} for c in CLASSES}
    wrong_class = 0
    times = []
    frames = 0
    for k in range(clips):
        seed = 10000 + k
        rng = np.random.default_rng(seed)
        scene = StreetScene.random(
            seed, duration_s=clip_s, fps=10, per_lane_per_min=float(rng.uniform(8, 20)), pole_x=None if rng.random() < 0.3 else float(rng.uniform(-6, 6))
        )
        for i in range(0, scene.n_frames, every):
            img, truth = scene.render(i)
            t0 = time.perf_counter()
            found = det.detect(img)
            times.append(time.perf_counter() - t0)
            frames += 1
            gts = list(truth.objects)
            used = [False] * len(gts)
            for d in sorted(found, key=lambda d: -d.score):
                best, bi = 0.0, -1
                for j, g in enumerate(gts):
                    if not used[j]:
                        v = iou(d.box, g.box)
                        if v > best:
                            best, bi = v, j
                if bi >= 0 and best >= iou_min:
                    used[bi] = True
                    g = gts[bi]
                    if g.visible < MIN_VISIBLE:
                        continue
                    if d.label == g.label:
                        stats[g.label]["tp"] += 1
                    else:  # found, but called the wrong class: a miss for one class, a false alarm for the other
                        wrong_class += 1
                        stats[g.label]["fn"] += 1
                        stats[d.label]["fp"] += 1
                else:
                    stats[d.label]["fp"] += 1
            for j, g in enumerate(gts):
                if not used[j] and g.visible >= MIN_VISIBLE:
                    stats[g.label]["fn"] += 1
    tot = {k: sum(s[k] for s in stats.values()) for k in ("tp", "fp", "fn")}
    return {
        "frames": frames,
        "per_class": stats,
        "total": tot,
        "wrong_class": wrong_class,
        "ms_median": 1000 * float(np.median(times)),
        "threshold": det.score_threshold,
    }


def pr(s: dict) -> tuple[float, float]:
    p = s["tp"] / max(s["tp"] + s["fp"], 1)
    r = s["tp"] / max(s["tp"] + s["fn"], 1)
    return p, r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="edge_models/vehicle_tiny")
    ap.add_argument("--clips", type=int, default=20)
    ap.add_argument("--clip-s", type=float, default=20.0)
    ap.add_argument("--every", type=int, default=5)
    ap.add_argument("--threshold", type=float, default=None)
    a = ap.parse_args()
    res = evaluate(a.model, a.clips, a.clip_s, a.every, a.threshold)
    print(f"{res['frames']} frames, score >= {res['threshold']}, IoU >= 0.5, objects >= {MIN_VISIBLE:.0%} visible")
    for c, s in res["per_class"].items():
        p, r = pr(s)
        print(f"  {c:6s} precision {p:.3f} recall {r:.3f}  (tp {s['tp']}, fp {s['fp']}, fn {s['fn']})")
    p, r = pr(res["total"])
    print(f"  all    precision {p:.3f} recall {r:.3f}  {res['total']}; found with wrong class: {res['wrong_class']}")
    print(f"  Detector.detect median {res['ms_median']:.1f} ms/frame on 1 thread (this machine, while evaluating)")


if __name__ == "__main__":
    main()
