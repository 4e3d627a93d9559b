"""Each supported output format, decoded through a real onnxruntime session.

The models are tiny ONNX graphs that emit known constant tensors, so the boxes
the Detector returns in frame pixels can be worked out by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from onnx_support import model_folder

from agent.vision.decoders import decode_yolox, yolox_grid
from agent.vision.models import Detector


def boxes_of(dets):
    return [(d.label, pytest.approx(d.box, abs=1e-3), pytest.approx(d.score, abs=1e-4)) for d in dets]


def yolov8_output(rows: list[tuple[float, float, float, float, list[float]]]) -> np.ndarray:
    """rows of (cx, cy, w, h, class scores) -> [1, 4 + C, N]."""
    return np.array([[cx, cy, w, h, *cls] for cx, cy, w, h, cls in rows], np.float32).T[None]


def test_yolov8_boxes_map_back_through_letterbox_with_nms_and_threshold(tmp_path):
    out = yolov8_output(
        [
            (20, 20, 10, 10, [0.9, 0.1]),  # kept: car
            (21, 20, 10, 10, [0.8, 0.0]),  # same car, lower score: removed by NMS
            (40, 40, 8, 8, [0.1, 0.3]),  # below the 0.5 threshold
            (48, 12, 8, 4, [0.2, 0.7]),  # kept: bus
        ]
    )
    det = Detector(model_folder(tmp_path, {"output0": out}), warmup=False)
    # 128x128 frame -> 64x64 input: scale 0.5, no padding.
    found = det.detect(np.zeros((128, 128, 3), np.uint8))
    assert boxes_of(found) == [("car", (30, 30, 50, 50), 0.9), ("bus", (88, 20, 104, 28), 0.7)]
    assert [d.class_id for d in found] == [0, 1]


def test_letterbox_padding_is_removed_from_boxes(tmp_path):
    out = yolov8_output([(32, 32, 32, 16, [0.95, 0.0])])
    det = Detector(model_folder(tmp_path, {"output0": out}), warmup=False)
    # 200x100 frame -> scale 0.32, image 64x32 placed at y = 16..48 in the 64x64 input.
    found = det.detect(np.zeros((100, 200, 3), np.uint8))
    assert boxes_of(found) == [("car", (50, 25, 150, 75), 0.95)]


def test_stretch_resize_scales_axes_independently(tmp_path):
    out = yolov8_output([(32, 32, 32, 16, [0.95, 0.0])])
    det = Detector(model_folder(tmp_path, {"output0": out}, resize="stretch"), warmup=False)
    found = det.detect(np.zeros((100, 200, 3), np.uint8))
    assert boxes_of(found) == [("car", (50, 37.5, 150, 62.5), 0.95)]


def test_yolov5_score_is_objectness_times_class(tmp_path):
    out = np.array(
        [
            [
                [20, 20, 10, 10, 0.9, 0.8, 0.1],  # 0.72 car
                [40, 40, 10, 10, 0.5, 0.0, 0.9],  # 0.45 bus: under threshold
                [50, 10, 4, 6, 0.6, 0.1, 0.95],
            ]
        ],  # 0.57 bus
        np.float32,
    )
    det = Detector(model_folder(tmp_path, {"output0": out}, fmt="yolov5"), warmup=False)
    found = det.detect(np.zeros((64, 64, 3), np.uint8))
    assert boxes_of(found) == [("car", (15, 15, 25, 25), 0.72), ("bus", (48, 7, 52, 13), 0.57)]


def test_yolox_raw_grid_outputs_are_decoded_per_stride(tmp_path):
    grid, _ = yolox_grid(32, 32, [8, 16])
    assert len(grid) == 16 + 4
    out = np.zeros((1, 20, 7), np.float32)
    # stride 8, cell (x=1, y=2) is row 2 * 4 + 1 = 9
    out[0, 9] = [0.5, 0.25, math.log(2.0), 0.0, 0.9, 1.0, 0.0]
    # stride 16, cell (x=1, y=1) is row 16 + 1 * 2 + 1 = 19
    out[0, 19] = [0.0, 0.0, 0.0, 0.0, 0.8, 0.0, 1.0]
    folder = model_folder(tmp_path, {"output0": out}, fmt="yolox", width=32, height=32, extra_output="decoded = false\nstrides = [8, 16]")
    found = Detector(folder, warmup=False).detect(np.zeros((32, 32, 3), np.uint8))
    # row 9: cx = (1 + 0.5) * 8 = 12, cy = (2 + 0.25) * 8 = 18, w = 2 * 8, h = 8
    # row 19: cx = 16 + 0, cy = 16, w = h = 16
    assert boxes_of(found) == [("car", (4, 14, 20, 22), 0.9), ("bus", (8, 8, 24, 24), 0.8)]


def test_yolox_decoded_export_is_read_like_yolov5(tmp_path):
    out = np.array([[[12, 18, 16, 8, 0.9, 1.0, 0.0]]], np.float32)
    folder = model_folder(tmp_path, {"output0": out}, fmt="yolox", width=32, height=32)
    found = Detector(folder, warmup=False).detect(np.zeros((32, 32, 3), np.uint8))
    assert boxes_of(found) == [("car", (4, 14, 20, 22), 0.9)]


def test_yolox_grid_size_mismatch_says_what_to_fix():
    with pytest.raises(ValueError, match="strides"):
        decode_yolox([np.zeros((1, 5, 7), np.float32)], 32, 32, 0.5, decoded=False, strides=[8, 16])


def test_ssd_tf_normalised_boxes_respect_num_detections_and_label_offset(tmp_path):
    outputs = {
        "num_detections:0": np.array([3.0], np.float32),
        "detection_scores:0": np.array([[0.9, 0.8, 0.6, 0.99]], np.float32),  # 4th is beyond num_detections
        "detection_boxes:0": np.array([[[0.1, 0.2, 0.5, 0.6], [0.5, 0.5, 0.9, 0.9], [0.0, 0.0, 0.2, 0.2], [0.0, 0.0, 1.0, 1.0]]], np.float32),
        "detection_classes:0": np.array([[1.0, 2.0, 1.0, 1.0]], np.float32),  # 2 = a class with no label
    }
    folder = model_folder(
        tmp_path,
        outputs,
        fmt="ssd_tf",
        width=300,
        height=300,
        layout="NHWC",
        dtype="uint8",
        resize="stretch",
        labels=["person"],
        extra_output="label_offset = 1",
        input_name="image_tensor:0",
        input_shape=[1, 300, 300, 3],
        input_dtype=np.uint8,
    )
    found = Detector(folder, warmup=False).detect(np.zeros((300, 600, 3), np.uint8))
    # frame 600x300: x scales by 2, y by 1; ymin, xmin, ymax, xmax order.
    assert boxes_of(found) == [("person", (120, 30, 360, 150), 0.9), ("person", (0, 0, 120, 60), 0.6)]


def test_class_filter_and_per_class_nms(tmp_path):
    out = yolov8_output([(20, 20, 10, 10, [0.9, 0.0]), (20, 20, 10, 10, [0.0, 0.8])])
    agnostic = Detector(model_folder(tmp_path, {"output0": out}), warmup=False)
    assert [d.label for d in agnostic.detect(np.zeros((64, 64, 3), np.uint8))] == ["car"]
    per_class = Detector(model_folder(tmp_path, {"output0": out}, detect='nms = "per_class"'), warmup=False)
    assert [d.label for d in per_class.detect(np.zeros((64, 64, 3), np.uint8))] == ["car", "bus"]
    only_bus = Detector(model_folder(tmp_path, {"output0": out}, detect='nms = "per_class"'), classes=["bus"], warmup=False)
    assert [d.label for d in only_bus.detect(np.zeros((64, 64, 3), np.uint8))] == ["bus"]


def test_no_detections_above_threshold_gives_empty_list(tmp_path):
    out = yolov8_output([(20, 20, 10, 10, [0.2, 0.1])])
    assert Detector(model_folder(tmp_path, {"output0": out})).detect(np.zeros((50, 80, 3), np.uint8)) == []
