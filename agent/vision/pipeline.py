"""One camera's analysis: detections -> tracks -> line crossings, zone
states and bin levels. Runs inside the vision worker process.

Detection is either the ONNX model (detector mode) or background
subtraction (motion mode); both produce boxes, scores and labels for the same
tracker, so lines and zones behave the same in both modes.

A model camera's frame goes through three steps: `prepare` (letterbox and
tensor), inference, and `finish` (output decoding, NMS, tracker, lines,
zones, bins). `process` runs them in a row; the worker runs inference on its
own thread (agent.vision.stages) and overlaps the steps of consecutive
frames. Both paths call the same functions in the same order per camera, so
they give the same tracks and counts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from agent.vision.bays import BayReference, bay_box, reference_path
from agent.vision.bins import BinMonitor, crop
from agent.vision.config import CameraConfig, VisionConfig
from agent.vision.lines import CountingLine
from agent.vision.motion import MotionDetector
from agent.vision.stages import Job
from agent.vision.tracker import Track, Tracker
from agent.vision.zones import Zone

if TYPE_CHECKING:
    from agent.vision.models import Detector
    from agent.vision.preprocess import Transform

# boxes (N,4) x1 y1 x2 y2 pixels, scores (N,), labels
Detections = tuple[np.ndarray, np.ndarray, list[str]]
DetectFn = Callable[[np.ndarray], Detections]


class ModelDetector:
    """A camera's ONNX model as the three steps the worker overlaps. Calling
    it runs them in a row. Holds no per-camera state: cameras with the same
    model share one (and its onnxruntime session)."""

    def __init__(self, det: Detector) -> None:
        self.det = det

    def prepare(self, frame: np.ndarray) -> tuple[np.ndarray, Transform]:
        return self.det.preprocess(frame)

    def infer(self, tensor: np.ndarray) -> list[np.ndarray]:
        return self.det.run(tensor)

    def finish(self, outputs: list[np.ndarray], tf: Transform) -> Detections:
        found = self.det.postprocess(outputs, tf)
        boxes = np.array([d.box for d in found], dtype=np.float64).reshape(-1, 4)
        return boxes, np.array([d.score for d in found], dtype=np.float64), [d.label for d in found]

    def __call__(self, frame: np.ndarray) -> Detections:
        x, tf = self.prepare(frame)
        return self.finish(self.infer(x), tf)


def model_detector(cam: CameraConfig, vision: VisionConfig) -> tuple[ModelDetector, dict[str, Any]]:
    """Load the camera's ONNX model; returns the detector and what the status
    shows about the model."""
    from agent.vision.models import load_detector  # onnxruntime only where a model is used

    models_dir = Path(vision.models_dir)
    if not models_dir.is_absolute() and not models_dir.is_dir():
        # the shipped models sit beside the agent package, wherever it runs from
        models_dir = Path(__file__).resolve().parents[2] / models_dir
    # the tracker's second stage needs the weak detections the model's own threshold would drop
    det = load_detector(
        cam.model,
        models_dir=models_dir,
        threads=vision.onnx_threads,
        spinning=vision.onnx_spinning,
        score_threshold=min(cam.tracker.low_score, cam.tracker.high_score),
    )
    info = {"model": cam.model, "labels": list(det.labels), "version": det.manifest.model.version}
    return ModelDetector(det), info


class Ema:
    """Exponential moving average of a duration in ms."""

    def __init__(self, alpha: float = 0.1) -> None:
        self.alpha = alpha
        self.value: float | None = None

    def add(self, ms: float) -> None:
        self.value = ms if self.value is None else self.value + self.alpha * (ms - self.value)


class CameraPipeline:
    def __init__(self, cam: CameraConfig, data_dir: str, detect: DetectFn | None, info: dict[str, Any] | None = None) -> None:
        self.cam = cam
        self.data_dir = data_dir
        self.info = dict(info or {})
        if cam.mode == "motion":
            motion = MotionDetector(cam.motion_label, cam.motion_min_area)
            detect = motion.detect
            self.info.setdefault("model", "motion")
        # a camera that only watches bins or reference bays needs no detector at all
        self.needs_detections = bool(cam.lines or any(z.occupancy == "tracks" for z in cam.zones))
        self.detect = detect
        self.classes = set(cam.classes)
        self.tracker = Tracker(cam.tracker)
        self.lines: list[CountingLine] = []
        self.zones: list[Zone] = []
        self.bins = [BinMonitor(b, cam.name, data_dir) for b in cam.bins]
        self.bays: dict[str, BayReference | None] = {}
        self.bay_errors: dict[str, str] = {}
        for z in cam.zones:
            if z.occupancy == "reference":
                self.reload_bay(z.name)
        self._size: tuple[int, int] | None = None
        self.frames = 0
        # detect = prepare + infer + decode for a model (each also shown), the detector's time in motion mode
        self.stage_ms = {name: Ema() for name in ("detect", "prepare", "infer", "decode", "track", "count", "bins")}
        self.last_image: np.ndarray | None = None
        self.last_boxes = np.zeros((0, 4))
        self.last_labels: list[str] = []
        self.tracks: list[Track] = []

    def _geometry(self, w: int, h: int) -> None:
        if self._size == (w, h):
            return
        # first frame, or the camera changed resolution: rebuild (normalised config)
        self._size = (w, h)
        self.lines = [CountingLine(lc, w, h, self.cam.classes) for lc in self.cam.lines]
        self.zones = [Zone(zc, w, h, self.cam.classes) for zc in self.cam.zones]

    @property
    def model(self) -> ModelDetector | None:
        """The model whose steps the worker may overlap, when this camera's
        detections come from one."""
        return self.detect if self.needs_detections and isinstance(self.detect, ModelDetector) else None

    def process(self, image: np.ndarray, t: float) -> dict[str, Any]:
        """Analyse one frame taken at time `t` (seconds). Returns the events:
        crossings [(line, label, direction, track_id)], zones {name: value}
        whose debounced value changed, bins {name: (level, overflow)}."""
        if self.model is not None:
            job = self.prepare(image, t)
            t0 = time.perf_counter()
            job.outputs = job.run(job.tensor)
            job.infer_ms = (time.perf_counter() - t0) * 1000
            return self.finish(job)
        detections = None
        if self.needs_detections and self.detect is not None:
            t0 = time.perf_counter()
            detections = self.detect(image)
            self.stage_ms["detect"].add((time.perf_counter() - t0) * 1000)
        return self._analyse(image, t, detections)

    def prepare(self, image: np.ndarray, t: float, *, captured: float = 0.0, owner: Any = None) -> Job:
        """First step of a model camera's frame: the model's input tensor."""
        model = self.model
        assert model is not None, "prepare() is for cameras whose detections come from a model"
        taken, t0 = time.monotonic(), time.perf_counter()
        tensor, tf = model.prepare(image)
        ms = (time.perf_counter() - t0) * 1000
        return Job(owner, image, t, captured, tensor, tf, model.infer, taken, ms)

    def finish(self, job: Job) -> dict[str, Any]:
        """Last step: the inference's outputs to events, as process() returns them.
        Raises what inference raised."""
        if job.error is not None:
            raise job.error
        model = self.model
        assert model is not None and job.outputs is not None
        t0 = time.perf_counter()
        detections = model.finish(job.outputs, job.transform)
        decode_ms = (time.perf_counter() - t0) * 1000
        for name, ms in (("prepare", job.prepare_ms), ("infer", job.infer_ms), ("decode", decode_ms)):
            self.stage_ms[name].add(ms)
        self.stage_ms["detect"].add(job.prepare_ms + job.infer_ms + decode_ms)
        return self._analyse(job.image, job.t, detections)

    def _analyse(self, image: np.ndarray, t: float, detections: Detections | None) -> dict[str, Any]:
        h, w = image.shape[:2]
        self._geometry(w, h)
        self.frames += 1
        self.last_image = image
        events: dict[str, Any] = {"crossings": [], "zones": {}, "bins": {}}
        if detections is not None:
            boxes, scores, labels = detections
            if self.classes and len(labels):
                keep = [i for i, lab in enumerate(labels) if lab in self.classes]
                boxes, scores, labels = boxes[keep], scores[keep], [labels[i] for i in keep]
            t1 = time.perf_counter()
            self.tracks = self.tracker.update(boxes, scores, labels, t)
            t2 = time.perf_counter()
            for line in self.lines:
                for c in line.update(self.tracks, t):
                    events["crossings"].append((c.line, c.label, c.direction, c.track_id))
                line.forget(self.tracker.removed)
            for z in self.zones:
                if z.cfg.occupancy == "tracks" and z.update(self.tracks, t):
                    events["zones"][z.name] = z.state.value
            t3 = time.perf_counter()
            self.last_boxes, self.last_labels = boxes, labels
            self.stage_ms["track"].add((t2 - t1) * 1000)
            self.stage_ms["count"].add((t3 - t2) * 1000)
        for z in self.zones:
            ref = self.bays.get(z.name)
            if ref is not None and z.update_raw(ref.occupied(crop(image, bay_box(z.cfg))), t):
                events["zones"][z.name] = z.state.value
        if self.bins:
            t0 = time.perf_counter()
            for b in self.bins:
                b.update(image)
                if b.level is not None:
                    events["bins"][b.name] = (round(b.level, 1), b.overflow)
            self.stage_ms["bins"].add((time.perf_counter() - t0) * 1000)
        return events

    def zone_states(self) -> dict[str, int | None]:
        return {z.name: z.state.value for z in self.zones}

    def reference_errors(self) -> dict[str, str]:
        """Bins and reference bays that cannot be estimated yet, with what to do."""
        return {**{b.name: b.error for b in self.bins if b.error}, **self.bay_errors}

    def reload_reference(self, name: str) -> None:
        for b in self.bins:
            if b.name == name:
                b.reload()
        if name in self.bays:
            self.reload_bay(name)

    def reload_bay(self, name: str) -> None:
        z = next(z for z in self.cam.zones if z.name == name)
        path = reference_path(z, self.cam.name, self.data_dir)
        img = cv2.imread(path) if os.path.exists(path) else None
        if img is None:
            self.bays[name] = None
            self.bay_errors[name] = (
                f"no reference image {path}: record it while the bay is free with `edge-agent diag camera reference {self.cam.name} {name} empty`"
            )
        else:
            self.bays[name] = BayReference(z, img)
            self.bay_errors.pop(name, None)
