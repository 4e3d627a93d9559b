"""Pieces shared by the scene renderers: ground-truth records, lighting and
sensor noise, video writing. See hil_tests.emulators.scenes for the public API.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np


@dataclass(frozen=True)
class GTObject:
    """One object in one frame, exactly as it was drawn.

    Box is the tight box of the drawn silhouette (shadow excluded), clipped to
    the frame, in pixels with x2/y2 exclusive-ish floats. `visible` is the
    fraction of the silhouette's pixels not hidden by nearer things (other
    vehicles, the pole) and inside the frame: 1.0 = fully visible.
    """

    track_id: int
    cls: int
    label: str
    box: tuple[float, float, float, float]
    visible: float
    direction: int = 0  # +1 moving right in the image, -1 left, 0 standing


@dataclass(frozen=True)
class FrameTruth:
    """Everything known about one frame."""

    index: int
    t: float
    objects: tuple[GTObject, ...] = ()
    # Parking scenes: bay id -> occupied. Bin scenes: bin id -> fill level 0..1.
    occupancy: dict[str, bool] = field(default_factory=dict)
    levels: dict[str, float] = field(default_factory=dict)
    gain: float = 1.0


def truth_to_json(truths: Sequence[FrameTruth]) -> str:
    return json.dumps([asdict(t) for t in truths])


def save_truth(path: str | Path, truths: Sequence[FrameTruth]) -> None:
    Path(path).write_text(truth_to_json(truths), encoding="utf-8")


def load_truth(path: str | Path) -> list[FrameTruth]:
    out = []
    for d in json.loads(Path(path).read_text(encoding="utf-8")):
        objs = tuple(GTObject(**{**o, "box": tuple(o["box"])}) for o in d.pop("objects"))
        out.append(FrameTruth(objects=objs, **d))
    return out


@dataclass(frozen=True)
class Lighting:
    """Global brightness over time plus sensor noise.

    keyframes: (t_seconds, gain) pairs, linearly interpolated, held at the ends.
    A gain of 1.0 is the scene as drawn; 0.5 is dusk; a step between two close
    keyframes is a sudden change (a cloud, street lights switching).
    noise_sigma: std of additive Gaussian noise in grey levels, new every frame.
    """

    keyframes: tuple[tuple[float, float], ...] = ((0.0, 1.0),)
    noise_sigma: float = 2.0

    def gain_at(self, t: float) -> float:
        ts = [k[0] for k in self.keyframes]
        gs = [k[1] for k in self.keyframes]
        return float(np.interp(t, ts, gs))

    def apply(self, img: np.ndarray, t: float, rng: np.random.Generator) -> np.ndarray:
        g = self.gain_at(t)
        out = img.astype(np.float32) * g
        if self.noise_sigma > 0:
            out += rng.standard_normal(size=img.shape, dtype=np.float32) * np.float32(self.noise_sigma)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)

    @staticmethod
    def random(rng: np.random.Generator, duration_s: float) -> Lighting:
        """A drifting gain with one passing cloud somewhere in the clip."""
        base = float(rng.uniform(0.8, 1.15))
        t0 = float(rng.uniform(0.2, 0.6)) * duration_s
        dip = float(rng.uniform(0.55, 0.85)) * base
        keys = ((0.0, base), (t0, base), (t0 + 1.0, dip), (t0 + 4.0, dip), (t0 + 6.0, base), (duration_s, base))
        return Lighting(keyframes=keys, noise_sigma=float(rng.uniform(1.0, 4.0)))


def frame_rng(seed: int, index: int) -> np.random.Generator:
    # Per-frame generator: frame i is identical whether rendered alone or in sequence.
    return np.random.default_rng([seed, index, 7919])


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float) -> int:
    """Write BGR frames as MJPG .avi (decodable by OpenCV everywhere). Returns frame count."""
    path = Path(path)
    writer = None
    n = 0
    try:
        for frame in frames:
            if writer is None:
                h, w = frame.shape[:2]
                writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
                if not writer.isOpened():
                    raise RuntimeError(f"OpenCV cannot write MJPG video to {path}; check the folder exists and is writable")
            writer.write(frame)
            n += 1
    finally:
        if writer is not None:
            writer.release()
    return n


def value_noise(rng: np.random.Generator, shape: tuple[int, int], cell: int, amp: float) -> np.ndarray:
    """Smooth random texture (float32, zero mean) for asphalt, paving, rubbish."""
    small = rng.normal(0.0, 1.0, size=(shape[0] // cell + 2, shape[1] // cell + 2)).astype(np.float32)
    big = cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    return big * amp


def shade(colour: Sequence[float], k: float, add: float = 0.0) -> tuple[int, int, int]:
    return tuple(int(np.clip(c * k + add, 0, 255)) for c in colour)  # type: ignore[return-value]


def box_of(points: np.ndarray, w: int, h: int) -> tuple[float, float, float, float] | None:
    """Tight box of points clipped to the frame, or None when entirely outside."""
    x1, y1 = float(points[:, 0].min()), float(points[:, 1].min())
    x2, y2 = float(points[:, 0].max()), float(points[:, 1].max())
    x1, y1, x2, y2 = max(x1, 0.0), max(y1, 0.0), min(x2, float(w)), min(y2, float(h))
    if x2 - x1 < 1.0 or y2 - y1 < 1.0:
        return None
    return (round(x1, 2), round(y1, 2), round(x2, 2), round(y2, 2))


class Clip:
    """What every scene is as a video: frames in order, their truth, an .avi.

    Subclasses provide `render(index, pixels=True) -> (image | None, FrameTruth)`,
    `n_frames` and `fps`.
    """

    n_frames: int
    fps: float

    def render(self, index: int, pixels: bool = True) -> tuple[np.ndarray | None, FrameTruth]:
        raise NotImplementedError

    def frames(self):
        """Yields (frame_bgr, FrameTruth) for every frame in order."""
        for i in range(self.n_frames):
            yield self.render(i)

    def truths(self) -> list[FrameTruth]:
        return [self.render(i, pixels=False)[1] for i in range(self.n_frames)]

    def write_video(self, path) -> list[FrameTruth]:
        """Writes the clip as MJPG .avi; returns the per-frame truth."""
        truths: list[FrameTruth] = []

        def gen():
            for img, tr in self.frames():
                truths.append(tr)
                yield img

        write_video(path, gen(), self.fps)
        return truths
