"""The model manifest (edge_models/<name>/manifest.toml): what a model file
expects and emits, where it came from, and how good it is. Strict: an unknown
key is an error (a typo in `mean` must not silently mean "no normalisation").
The format is documented in docs/vision-models.md.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from drivers.config import StrictModel

# Output tensors each format needs, by role. Kept here, not with the decoders,
# so reading a manifest (config checks, remote model updates) needs no NumPy:
# a gateway without cameras does not install it.
OUTPUT_ROLES = {
    "ssd_tf": ("num_detections", "scores", "boxes", "classes"),
    "yolov5": ("predictions",),
    "yolov8": ("predictions",),
    "yolox": ("predictions",),
}

MANIFEST_NAME = "manifest.toml"


class ModelError(Exception):
    """A model folder that cannot be used; the message says what to fix."""


class ModelInfo(StrictModel):
    name: str
    version: str
    file: str = "model.onnx"
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    licence: str = Field(description="SPDX identifier of the weights' licence, e.g. Apache-2.0, MIT, AGPL-3.0-only.")
    source: str
    description: str = ""


class InputSpec(StrictModel):
    name: str
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    layout: Literal["NCHW", "NHWC"]
    dtype: Literal["float32", "float16", "uint8"]
    colour: Literal["RGB", "BGR"]
    resize: Literal["letterbox", "stretch"]
    pad_value: int = Field(114, ge=0, le=255)
    letterbox_align: Literal["center", "top_left"] = Field("center", description="Where the image sits in the padded input.")
    scale: float = Field(1.0, gt=0, description="Pixels are multiplied by this first (1/255 for 0..1 inputs).")
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)

    @model_validator(mode="after")
    def _std(self) -> InputSpec:
        if any(s <= 0 for s in self.std):
            raise ValueError("input.std values must be > 0")
        return self


class OutputSpec(StrictModel):
    format: Literal["ssd_tf", "yolov5", "yolov8", "yolox"]
    names: list[str] = Field(min_length=1, description="Graph output names in the order the format defines.")
    labels: list[str] = Field(min_length=1)
    label_offset: int = Field(0, ge=0, description="Class id of labels[0] (1 for TF models whose id 0 is background).")
    decoded: bool = Field(True, description="yolox only: false when the export left grid decoding out of the graph.")
    strides: list[int] = Field(default_factory=lambda: [8, 16, 32])

    @model_validator(mode="after")
    def _roles(self) -> OutputSpec:
        roles = OUTPUT_ROLES[self.format]
        if len(self.names) != len(roles):
            raise ValueError(f"format {self.format} has {len(roles)} output(s) ({', '.join(roles)}); output.names lists {len(self.names)}")
        return self


class DetectSpec(StrictModel):
    score_threshold: float = Field(0.5, gt=0, lt=1)
    nms_iou: float = Field(0.45, gt=0, le=1)
    nms: Literal["agnostic", "per_class"] = Field("agnostic", description="agnostic: one box per object whatever its class.")
    max_detections: int = Field(100, ge=1)
    classes: list[str] = Field(default_factory=list, description="Labels kept by default; empty keeps all.")


class AccuracySpec(StrictModel):
    dataset: str
    precision: float | None = Field(None, ge=0, le=1)
    recall: float | None = Field(None, ge=0, le=1)
    iou: float = 0.5
    score_threshold: float | None = None
    ms_per_frame: str = ""
    notes: str = ""
    limits: str


class Manifest(StrictModel):
    model: ModelInfo
    input: InputSpec
    output: OutputSpec
    detect: DetectSpec = Field(default_factory=DetectSpec)  # type: ignore[arg-type]
    accuracy: AccuracySpec

    @model_validator(mode="after")
    def _classes_known(self) -> Manifest:
        unknown = [c for c in self.detect.classes if c not in self.output.labels]
        if unknown:
            raise ValueError(f"detect.classes names {unknown} which are not in output.labels {self.output.labels}")
        return self


def load_manifest(folder: str | Path) -> Manifest:
    path = Path(folder) / MANIFEST_NAME
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path} is missing: every model folder needs a manifest.toml (see docs/vision-models.md for the format)") from None
    except tomllib.TOMLDecodeError as e:
        raise ModelError(f"{path}: not valid TOML ({e}); fix the syntax") from None
    try:
        return Manifest.model_validate(raw)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msg = "unknown key; remove it or fix its spelling" if err["type"] == "extra_forbidden" else err["msg"]
            lines.append(f"  {key}: {msg}")
        raise ModelError(f"{path} is not a valid model manifest:\n" + "\n".join(lines) + "\nSee docs/vision-models.md for every key.") from None
