"""Model folders: strict manifest, checksum, graph-vs-manifest checks with
errors that say what to change, session threading, preprocessing, and the
shipped models themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx_support import model_folder

from agent.vision.manifest import ModelError, load_manifest
from agent.vision.models import Detector, load_detector, session_options
from agent.vision.preprocess import letterbox, resize, stretch, to_tensor

MODELS = Path(__file__).resolve().parents[1] / "edge_models"
YOLO8 = {"output0": np.zeros((1, 6, 10), np.float32)}


def test_unknown_manifest_key_is_an_error_naming_it(tmp_path):
    folder = model_folder(tmp_path, YOLO8, extra_output="maen = [0.5, 0.5, 0.5]")
    with pytest.raises(ModelError) as e:
        load_manifest(folder)
    assert "output.maen: unknown key" in str(e.value)


def test_missing_manifest_points_to_docs(tmp_path):
    with pytest.raises(ModelError, match="manifest.toml is missing.*docs/vision-models.md"):
        load_manifest(tmp_path)


def test_bad_enum_value_is_reported_with_its_key(tmp_path):
    folder = model_folder(tmp_path, YOLO8)
    text = (folder / "manifest.toml").read_text().replace('layout = "NCHW"', 'layout = "CHW"')
    (folder / "manifest.toml").write_text(text)
    with pytest.raises(ModelError, match="input.layout"):
        load_manifest(folder)


def test_checksum_mismatch_refuses_to_load(tmp_path):
    folder = model_folder(tmp_path, YOLO8)
    with (folder / "model.onnx").open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ModelError, match="sha256 is .* but the manifest says .*Copy the right file again"):
        Detector(folder)


def test_input_name_mismatch_lists_the_real_inputs(tmp_path):
    folder = model_folder(tmp_path, YOLO8, graph_input="data")
    with pytest.raises(ModelError, match=r"no input named 'images'; its inputs are \['data'\]"):
        Detector(folder)


def test_dtype_mismatch_says_which_dtype_to_set(tmp_path):
    folder = model_folder(tmp_path, YOLO8, input_dtype=np.uint8)
    with pytest.raises(ModelError, match="input 'images' is uint8 but the manifest says dtype = 'float32'"):
        Detector(folder)


def test_layout_mismatch_suggests_the_other_layout(tmp_path):
    folder = model_folder(tmp_path, YOLO8, input_shape=[1, 64, 64, 3])
    with pytest.raises(ModelError, match="set \\[input\\].layout = 'NHWC'"):
        Detector(folder)


def test_input_size_mismatch_names_the_key(tmp_path):
    folder = model_folder(tmp_path, YOLO8, input_shape=[1, 3, 64, 96])
    with pytest.raises(ModelError, match=r"set \[input\].width = 96"):
        Detector(folder)


def test_label_count_mismatch_explains_the_class_count(tmp_path):
    coco_like = {"output0": np.zeros((1, 84, 10), np.float32)}
    folder = model_folder(tmp_path, coco_like)
    with pytest.raises(ModelError, match=r"expects \[1, 4 \+ 2, N\]; the model has 80 classes"):
        Detector(folder)


def test_output_names_must_match_the_graph(tmp_path):
    folder = model_folder(tmp_path, YOLO8, names=["output"])
    with pytest.raises(ModelError, match=r"outputs are \['output0'\] but \[output\].names is \['output'\]"):
        Detector(folder)


def test_wrong_output_count_for_format_is_a_manifest_error(tmp_path):
    folder = model_folder(tmp_path, YOLO8, fmt="ssd_tf")
    with pytest.raises(ModelError, match="format ssd_tf has 4 output"):
        load_manifest(folder)


def test_unknown_class_filter_is_refused(tmp_path):
    with pytest.raises(ModelError, match=r"classes \['tram'\] are not labels"):
        Detector(model_folder(tmp_path, YOLO8), classes=["tram"])


def test_missing_model_lists_available_models(tmp_path):
    model_folder(tmp_path, YOLO8)
    with pytest.raises(ModelError, match=r"model 'nope' not found .*\['model'\]"):
        load_detector("nope", models_dir=tmp_path)


def test_session_options_default_one_thread_no_spinning():
    so = session_options()
    assert so.intra_op_num_threads == 1 and so.inter_op_num_threads == 1
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    so2 = session_options(threads=2, spinning=True)
    assert so2.intra_op_num_threads == 2
    assert so2.get_session_config_entry("session.intra_op.allow_spinning") == "1"


def test_letterbox_keeps_aspect_and_maps_boxes_back():
    img = np.full((100, 200, 3), 255, np.uint8)
    out, tf = letterbox(img, 64, 64)
    assert out.shape == (64, 64, 3)
    assert (out[:16] == 114).all() and (out[48:] == 114).all() and (out[16:48] == 255).all()
    back = tf.to_frame(np.array([[0.0, 16.0, 64.0, 48.0]]))
    assert back.tolist() == [[0.0, 0.0, 200.0, 100.0]]


def test_top_left_letterbox_pads_right_and_bottom_only():
    out, tf = letterbox(np.full((100, 200, 3), 255, np.uint8), 64, 64, align="top_left")
    assert (out[:32] == 255).all() and (out[32:] == 114).all()
    assert tf.to_frame(np.array([[0.0, 0.0, 64.0, 32.0]])).tolist() == [[0.0, 0.0, 200.0, 100.0]]


def test_resize_is_area_averaging_for_whole_factors_and_close_to_it_otherwise():
    import cv2

    img = np.random.default_rng(1).integers(0, 256, (360, 640, 3), dtype=np.uint8)
    img = cv2.GaussianBlur(img, (9, 9), 3)  # a photograph-like image, not white noise
    assert np.array_equal(resize(img, 320, 180), cv2.resize(img, (320, 180), interpolation=cv2.INTER_AREA))
    ours = resize(img, 300, 300).astype(int)
    area = cv2.resize(img, (300, 300), interpolation=cv2.INTER_AREA).astype(int)
    assert ours.shape == (300, 300, 3) and np.abs(ours - area).mean() < 2.0
    up = resize(img[:100, :100], 200, 150)
    assert up.shape == (150, 200, 3)


def test_stretch_maps_boxes_back_per_axis():
    _, tf = stretch(np.zeros((100, 200, 3), np.uint8), 50, 50)
    assert tf.to_frame(np.array([[10.0, 10.0, 20.0, 20.0]])).tolist() == [[40.0, 20.0, 80.0, 40.0]]


def test_to_tensor_colour_order_layout_and_normalisation():
    img = np.zeros((2, 3, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 10, 20, 30  # B, G, R
    x = to_tensor(img, rgb=True, layout="NCHW", dtype="float32", scale=1.0, mean=(30, 20, 10), std=(2, 2, 2))
    assert x.shape == (1, 3, 2, 3) and x.dtype == np.float32 and not x.any()
    y = to_tensor(img, rgb=False, layout="NHWC", dtype="uint8", scale=1.0, mean=(0, 0, 0), std=(1, 1, 1))
    assert y.shape == (1, 2, 3, 3) and y.dtype == np.uint8 and y[0, 0, 0].tolist() == [10, 20, 30]
    z = to_tensor(img, rgb=True, layout="NCHW", dtype="float32", scale=1 / 255, mean=(0, 0, 0), std=(1, 1, 1))
    assert z[0, :, 0, 0] == pytest.approx([30 / 255, 20 / 255, 10 / 255])
    # ImageNet-style normalisation, per-channel std, in both layouts: the same numbers.
    kw = {"rgb": True, "dtype": "float32", "scale": 1 / 255, "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
    want = [(30 / 255 - 0.485) / 0.229, (20 / 255 - 0.456) / 0.224, (10 / 255 - 0.406) / 0.225]
    assert to_tensor(img, layout="NCHW", **kw)[0, :, 1, 2] == pytest.approx(want, rel=1e-5)
    assert to_tensor(img, layout="NHWC", **kw)[0, 1, 2, :] == pytest.approx(want, rel=1e-5)
    bgr_half = to_tensor(img, rgb=False, layout="NCHW", dtype="float16", scale=1.0, mean=(0, 0, 0), std=(2, 2, 2))
    assert bgr_half.dtype == np.float16 and bgr_half[0, :, 0, 0].tolist() == [5.0, 10.0, 15.0]


@pytest.mark.parametrize("name", ["person_ssdlite", "vehicle_tiny"])
def test_shipped_models_load_and_match_their_manifests(name):
    det = load_detector(name, models_dir=MODELS)
    assert det.name == name and det.labels
    m = det.manifest
    assert (MODELS / name / "LICENSE").is_file() and m.model.licence
    assert m.accuracy.limits
    # Any frame size goes in; boxes come back inside it.
    for d in det.detect(np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)):
        assert 0 <= d.box[0] <= d.box[2] <= 320 and 0 <= d.box[1] <= d.box[3] <= 240
