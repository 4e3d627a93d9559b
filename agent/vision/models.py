"""Load a model folder (model.onnx + manifest.toml) and run it as a detector.

Loading is where a wrong model should fail, loudly and with a fix: the file's
sha256 must match the manifest (a truncated copy or a swapped file is caught
here, not as odd counts weeks later), and the ONNX graph's input and outputs
must agree with what the manifest says about them.

    det = load_detector("vehicle_tiny", models_dir="edge_models", threads=1)
    for d in det.detect(frame_bgr):
        d.box, d.score, d.class_id, d.label
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from agent.vision.decoders import decode, yolox_grid
from agent.vision.manifest import Manifest, ModelError, load_manifest
from agent.vision.preprocess import Transform, letterbox, stretch, to_tensor

__all__ = ["Detection", "Detector", "ModelError", "load_detector", "session_options"]

_ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8"}


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in frame pixels
    score: float
    class_id: int  # index into the model's labels
    label: str


def session_options(threads: int = 1, spinning: bool = False) -> ort.SessionOptions:
    """One predictable thread budget: `threads` for the maths, nothing in parallel
    between operators, no spin-waiting unless asked (spinning threads eat the
    core the rest of the agent needs on a 2-core gateway)."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    so.log_severity_level = 3
    return so


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _static(dim: object) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


def _check_input(m: Manifest, sess: ort.InferenceSession, where: str) -> None:
    inputs = sess.get_inputs()
    names = [i.name for i in inputs]
    if m.input.name not in names:
        raise ModelError(f"{where}: the graph has no input named {m.input.name!r}; its inputs are {names}. Set [input].name to the image input.")
    if len(inputs) != 1:
        raise ModelError(
            f"{where}: the graph has {len(inputs)} inputs {names}; only single-input image models are supported. Re-export the model with one image input."
        )
    inp = inputs[0]
    dtype = _ORT_DTYPES.get(inp.type, inp.type)
    if dtype != m.input.dtype:
        raise ModelError(
            f"{where}: input {inp.name!r} is {dtype} but the manifest says dtype = {m.input.dtype!r}; "
            f"set [input].dtype = {dtype!r} (and scale/mean/std to match how the model was trained)."
        )
    shape = list(inp.shape)
    if len(shape) != 4:
        raise ModelError(f"{where}: input {inp.name!r} has shape {shape}; an image input must have 4 dimensions.")
    if m.input.layout == "NCHW":
        c, h, w = shape[1], shape[2], shape[3]
    else:
        h, w, c = shape[1], shape[2], shape[3]
    if _static(c) not in (None, 3):
        other = "NHWC" if m.input.layout == "NCHW" else "NCHW"
        raise ModelError(f"{where}: input {inp.name!r} has shape {shape}, which is not 3 channels in {m.input.layout} layout; set [input].layout = {other!r}.")
    if _static(shape[0]) not in (None, 1):
        raise ModelError(f"{where}: input {inp.name!r} has batch size {shape[0]}; export with batch 1 or dynamic batch.")
    for dim, want, key in ((h, m.input.height, "height"), (w, m.input.width, "width")):
        if _static(dim) is not None and dim != want:
            raise ModelError(
                f"{where}: input {inp.name!r} has shape {shape} ({m.input.layout}) but the manifest says {key} = {want}; set [input].{key} = {dim}."
            )


def _check_outputs(m: Manifest, sess: ort.InferenceSession, where: str) -> None:
    outs = {o.name: list(o.shape) for o in sess.get_outputs()}
    missing = [n for n in m.output.names if n not in outs]
    if missing or len(outs) != len(m.output.names):
        raise ModelError(
            f"{where}: the graph's outputs are {list(outs)} but [output].names is {m.output.names} "
            f"(format {m.output.format}); list the graph's outputs in the order the format defines "
            f"(docs/vision-models.md)."
        )
    n_cls = len(m.output.labels) + m.output.label_offset
    fmt = m.output.format
    if fmt == "ssd_tf":
        want_ranks = (1, 2, 3, 2)
        for name, rank in zip(m.output.names, want_ranks, strict=True):
            if len(outs[name]) != rank:
                raise ModelError(
                    f"{where}: output {name!r} has shape {outs[name]}; TF SSD outputs are num_detections, "
                    f"scores, boxes, classes with 1, 2, 3, 2 dimensions. Check the order of [output].names."
                )
        return
    shape = outs[m.output.names[0]]
    if len(shape) != 3:
        raise ModelError(f"{where}: output {m.output.names[0]!r} has shape {shape}; format {fmt} expects 3 dimensions.")
    if fmt == "yolov8":
        want, got, pattern = 4 + n_cls, _static(shape[1]), f"[1, 4 + {n_cls}, N]"
    else:
        want, got, pattern = 5 + n_cls, _static(shape[2]), f"[1, N, 5 + {n_cls}]"
    if got is not None and got != want:
        fix = f"the model has {got - (4 if fmt == 'yolov8' else 5)} classes: list all of them in [output].labels (use [detect].classes to keep only some)"
        other = {"yolov8": "yolov5 or yolox", "yolov5": "yolov8", "yolox": "yolov8"}[fmt]
        raise ModelError(
            f"{where}: output {m.output.names[0]!r} has shape {shape} but format {fmt} with {n_cls} classes expects {pattern}; {fix}, or the format is {other}."
        )
    if fmt == "yolox" and not m.output.decoded and _static(shape[1]) is not None:
        rows = len(yolox_grid(m.input.width, m.input.height, m.output.strides)[0])
        if rows != shape[1]:
            raise ModelError(
                f"{where}: output has {shape[1]} rows but strides {m.output.strides} on a "
                f"{m.input.width}x{m.input.height} input give {rows}; fix [output].strides or the input size."
            )


class Detector:
    """An ONNX detector configured by its manifest. Not thread-safe: one per worker."""

    def __init__(
        self,
        folder: str | Path,
        threads: int = 1,
        spinning: bool = False,
        score_threshold: float | None = None,
        classes: list[str] | None = None,
        warmup: bool = True,
    ) -> None:
        self.folder = Path(folder)
        self.manifest = m = load_manifest(self.folder)
        path = self.folder / m.model.file
        where = str(path)
        if not path.is_file():
            raise ModelError(f"{where} is missing; copy the model file there or fix [model].file in the manifest.")
        digest = _sha256(path)
        if digest != m.model.sha256:
            raise ModelError(
                f"{where}: sha256 is {digest} but the manifest says {m.model.sha256}; the file is "
                f"damaged or not the model the manifest describes. Copy the right file again, or if you "
                f"replaced the model on purpose, update [model].sha256 (and the rest of the manifest)."
            )
        try:
            self.session = ort.InferenceSession(str(path), sess_options=session_options(threads, spinning), providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 -- onnxruntime raises unrelated types for a bad file
            raise ModelError(f"{where}: onnxruntime cannot load it ({e}); re-export the model (opset 11..21).") from None
        _check_input(m, self.session, where)
        _check_outputs(m, self.session, where)
        self.labels = list(m.output.labels)
        self.input_name = m.input.name
        self.output_names = list(m.output.names)
        self.score_threshold = m.detect.score_threshold if score_threshold is None else score_threshold
        keep = m.detect.classes if classes is None or not classes else classes
        unknown = [c for c in keep if c not in self.labels]
        if unknown:
            raise ModelError(f"classes {unknown} are not labels of model {m.model.name} ({self.labels}); use some of those or an empty list for all.")
        self.keep_ids = np.array(sorted(self.labels.index(c) for c in keep), np.int64) if keep else None
        if warmup:  # first run allocates and plans; keep that cost out of the first real frame
            self.detect(np.zeros((m.input.height, m.input.width, 3), np.uint8))

    @property
    def name(self) -> str:
        return self.manifest.model.name

    def preprocess(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, Transform]:
        i = self.manifest.input
        if frame_bgr.ndim == 2:
            frame_bgr = cv2.cvtColor(frame_bgr, cv2.COLOR_GRAY2BGR)
        if i.resize == "letterbox":
            img, tf = letterbox(frame_bgr, i.width, i.height, i.pad_value, i.letterbox_align)
        else:
            img, tf = stretch(frame_bgr, i.width, i.height)
        x = to_tensor(img, rgb=i.colour == "RGB", layout=i.layout, dtype=i.dtype, scale=i.scale, mean=i.mean, std=i.std)
        return x, tf

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        return self.session.run(self.output_names, {self.input_name: tensor})

    def postprocess(self, outputs: list[np.ndarray], tf: Transform) -> list[Detection]:
        m = self.manifest
        boxes, scores, ids = decode(m.output.format, outputs, m.input.width, m.input.height, self.score_threshold, m.output.decoded, m.output.strides)
        ids = ids - m.output.label_offset
        valid = (ids >= 0) & (ids < len(self.labels))  # ids the manifest has no label for are dropped
        if self.keep_ids is not None:
            valid &= np.isin(ids, self.keep_ids)
        boxes, scores, ids = boxes[valid], scores[valid], ids[valid]
        if len(scores) == 0:
            return []
        frame_boxes = tf.to_frame(boxes)
        # arrays straight into OpenCV (the per-candidate Python lists cost more than the NMS itself)
        xywh = np.concatenate([frame_boxes[:, :2], frame_boxes[:, 2:] - frame_boxes[:, :2]], axis=1)
        sc32 = np.ascontiguousarray(scores, np.float32)
        if m.detect.nms == "agnostic":
            idx = cv2.dnn.NMSBoxes(xywh, sc32, self.score_threshold, m.detect.nms_iou)
        else:
            idx = cv2.dnn.NMSBoxesBatched(xywh, sc32, ids.astype(np.int32), self.score_threshold, m.detect.nms_iou)
        sc = sc32.tolist()
        order = sorted((int(k) for k in np.asarray(idx).reshape(-1)), key=lambda k: -sc[k])[: m.detect.max_detections]
        return [
            Detection(
                tuple(round(float(v), 2) for v in frame_boxes[k]),
                round(sc[k], 4),
                int(ids[k]),  # type: ignore[arg-type]
                self.labels[int(ids[k])],
            )
            for k in order
        ]

    def detect(self, frame_bgr: np.ndarray) -> list[Detection]:
        x, tf = self.preprocess(frame_bgr)
        return self.postprocess(self.run(x), tf)


def load_detector(model: str | Path, models_dir: str | Path = "edge_models", threads: int = 1, spinning: bool = False, **kwargs) -> Detector:
    """`model` is a folder path, or a folder name under `models_dir`."""
    folder = Path(model)
    if not folder.is_dir():
        folder = Path(models_dir) / str(model)
    if not folder.is_dir():
        have = sorted(p.name for p in Path(models_dir).glob("*/") if (p / "manifest.toml").is_file()) if Path(models_dir).is_dir() else []
        raise ModelError(
            f"model {str(model)!r} not found in {models_dir} (models there: {have or 'none'}); "
            f"set the camera's model to one of them or copy the model folder there."
        )
    return Detector(folder, threads=threads, spinning=spinning, **kwargs)
