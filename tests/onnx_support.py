"""Build tiny real ONNX models that emit known tensors, and model folders around them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

_NP_TO_ONNX = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.uint8): TensorProto.UINT8}


def constant_model(path: Path, input_name: str, input_shape: list, input_dtype, outputs: dict[str, np.ndarray]) -> None:
    """A graph whose outputs are the given constants whatever the image fed in.

    The image input is declared but not read; onnxruntime still requires it.
    """
    nodes = []
    outs = []
    for k, (name, value) in enumerate(outputs.items()):
        value = np.asarray(value, np.float32)
        nodes.append(helper.make_node("Constant", [], [f"_c{k}"], value=numpy_helper.from_array(value, f"_v{k}")))
        nodes.append(helper.make_node("Identity", [f"_c{k}"], [name]))
        outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape)))
    graph = helper.make_graph(
        nodes,
        "constant_detector",
        [helper.make_tensor_value_info(input_name, _NP_TO_ONNX[np.dtype(input_dtype)], input_shape)],
        outs,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def manifest_text(
    *,
    sha: str,
    input_name: str = "images",
    width: int = 64,
    height: int = 64,
    layout: str = "NCHW",
    dtype: str = "float32",
    colour: str = "RGB",
    resize: str = "letterbox",
    fmt: str = "yolov8",
    names: list[str] | None = None,
    labels: list[str] | None = None,
    extra_output: str = "",
    detect: str = "",
    extra: str = "",
) -> str:
    names = names or ["output0"]
    labels = labels or ["car", "bus"]
    return f"""
[model]
name = "m"
version = "1"
sha256 = "{sha}"
licence = "MIT"
source = "test"

[input]
name = "{input_name}"
width = {width}
height = {height}
layout = "{layout}"
dtype = "{dtype}"
colour = "{colour}"
resize = "{resize}"
scale = 0.00392156862745098

[output]
format = "{fmt}"
names = {names!r}
labels = {labels!r}
{extra_output}

[detect]
score_threshold = 0.5
{detect}

[accuracy]
dataset = "none"
limits = "test model"
{extra}
""".replace("'", '"')


def model_folder(
    tmp: Path, outputs: dict[str, np.ndarray], *, input_shape: list | None = None, input_dtype=np.float32, graph_input: str | None = None, **manifest
) -> Path:
    folder = tmp / "model"
    folder.mkdir(exist_ok=True)
    layout = manifest.get("layout", "NCHW")
    w, h = manifest.get("width", 64), manifest.get("height", 64)
    shape = input_shape or ([1, 3, h, w] if layout == "NCHW" else [1, h, w, 3])
    constant_model(folder / "model.onnx", graph_input or manifest.get("input_name", "images"), shape, input_dtype, outputs)
    sha = hashlib.sha256((folder / "model.onnx").read_bytes()).hexdigest()
    manifest.setdefault("names", list(outputs))
    (folder / "manifest.toml").write_text(manifest_text(sha=sha, **manifest), encoding="utf-8")
    return folder
