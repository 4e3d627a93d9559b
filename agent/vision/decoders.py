"""Raw detector outputs -> boxes, scores, class ids, for the export formats we accept.

Every decoder returns (boxes (N, 4) float x1, y1, x2, y2 in model-input pixels,
scores (N,), class ids (N,) int as the model numbers them) with rows below
`min_score` dropped; NMS and label lookup happen in agent.vision.models.

Formats:
  ssd_tf  TensorFlow Object Detection API: num_detections [1], scores [1, K],
          boxes [1, K, 4] normalised ymin, xmin, ymax, xmax, classes [1, K] (float ids).
  yolov5  [1, N, 5 + C]: cx, cy, w, h, objectness, class scores (sigmoid applied).
  yolov8  [1, 4 + C, N]: cx, cy, w, h, class scores (YOLOv8, YOLO11 Ultralytics exports).
  yolox   [1, N, 5 + C] like yolov5; when exported without decoding in the graph
          (YOLOX's default), x, y are offsets in grid cells and w, h log sizes per
          stride, and are decoded here from the strides and the input size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agent.vision.manifest import OUTPUT_ROLES  # noqa: F401  (outputs each format has, in manifest order)

FORMATS = ("ssd_tf", "yolov5", "yolov8", "yolox")

Decoded = tuple[np.ndarray, np.ndarray, np.ndarray]


def _empty() -> Decoded:
    return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int64)


def _cxcywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    half = b[:, 2:4] / 2
    return np.concatenate([b[:, 0:2] - half, b[:, 0:2] + half], axis=1)


def _best_class(cls_scores: np.ndarray, obj: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    ids = cls_scores.argmax(axis=1)
    scores = cls_scores[np.arange(len(ids)), ids]
    if obj is not None:
        scores = scores * obj
    return scores, ids


def decode_ssd_tf(outputs: Sequence[np.ndarray], width: int, height: int, min_score: float) -> Decoded:
    num, scores, boxes, classes = (np.asarray(o) for o in outputs)
    n = int(np.asarray(num).reshape(-1)[0]) if num.size else 0
    scores = scores.reshape(-1)[:n].astype(np.float32)
    boxes = boxes.reshape(-1, 4)[:n].astype(np.float32)
    classes = np.rint(classes.reshape(-1)[:n]).astype(np.int64)
    keep = scores >= min_score
    b = boxes[keep]
    xyxy = np.stack([b[:, 1] * width, b[:, 0] * height, b[:, 3] * width, b[:, 2] * height], axis=1)
    return xyxy.reshape(-1, 4), scores[keep], classes[keep]


def decode_yolov5(outputs: Sequence[np.ndarray], min_score: float) -> Decoded:
    p = np.asarray(outputs[0], np.float32).reshape(-1, np.asarray(outputs[0]).shape[-1])
    if p.shape[1] < 6:
        return _empty()
    p = p[p[:, 4] >= min_score]  # objectness bounds the score: cheap first cut
    scores, ids = _best_class(p[:, 5:], p[:, 4])
    keep = scores >= min_score
    return _cxcywh_to_xyxy(p[keep, :4]), scores[keep], ids[keep].astype(np.int64)


def decode_yolov8(outputs: Sequence[np.ndarray], min_score: float) -> Decoded:
    o = np.asarray(outputs[0], np.float32)
    p = o.reshape(o.shape[-2], o.shape[-1]).T  # [N, 4 + C]
    if p.shape[1] < 5:
        return _empty()
    scores, ids = _best_class(p[:, 4:], None)
    keep = scores >= min_score
    return _cxcywh_to_xyxy(p[keep, :4]), scores[keep], ids[keep].astype(np.int64)


def yolox_grid(width: int, height: int, strides: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Cell origins (N, 2) and strides (N, 1) in YOLOX's output order (stride by stride, row-major)."""
    grids, ss = [], []
    for s in strides:
        gy, gx = np.mgrid[0 : height // s, 0 : width // s]
        grids.append(np.stack([gx.ravel(), gy.ravel()], axis=1))
        ss.append(np.full((gx.size, 1), s))
    return np.concatenate(grids).astype(np.float32), np.concatenate(ss).astype(np.float32)


def decode_yolox(outputs: Sequence[np.ndarray], width: int, height: int, min_score: float, decoded: bool, strides: Sequence[int]) -> Decoded:
    p = np.asarray(outputs[0], np.float32)
    p = p.reshape(-1, p.shape[-1]).copy()
    if not decoded:
        grid, s = yolox_grid(width, height, strides)
        if len(grid) != len(p):
            raise ValueError(
                f"YOLOX output has {len(p)} rows but strides {list(strides)} on a {width}x{height} "
                f"input give {len(grid)}; fix [output].strides or the input size in the manifest"
            )
        p[:, 0:2] = (p[:, 0:2] + grid) * s
        p[:, 2:4] = np.exp(p[:, 2:4]) * s
    return decode_yolov5([p[None]], min_score)


def decode(
    fmt: str, outputs: Sequence[np.ndarray], width: int, height: int, min_score: float, decoded: bool = True, strides: Sequence[int] = (8, 16, 32)
) -> Decoded:
    if fmt == "ssd_tf":
        return decode_ssd_tf(outputs, width, height, min_score)
    if fmt == "yolov5":
        return decode_yolov5(outputs, min_score)
    if fmt == "yolov8":
        return decode_yolov8(outputs, min_score)
    if fmt == "yolox":
        return decode_yolox(outputs, width, height, min_score, decoded, strides)
    raise ValueError(f"unknown output format {fmt!r}; use one of {', '.join(FORMATS)}")
