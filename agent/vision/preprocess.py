"""Frame -> model input tensor, and model boxes -> frame pixels.

A model is trained on images prepared one way (size, aspect handling, colour
order, value scaling, memory layout); feeding it anything else silently costs
accuracy, so every step here is driven by the model's manifest.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Transform:
    """How frame pixels map to model-input pixels: input = frame * scale + pad."""

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    frame_w: int
    frame_h: int

    def to_frame(self, boxes: np.ndarray) -> np.ndarray:
        """Boxes (N, 4) x1, y1, x2, y2 in model-input pixels -> frame pixels, clipped to the frame."""
        out = np.empty_like(boxes, dtype=np.float64)
        out[:, 0::2] = ((boxes[:, 0::2] - self.pad_x) / self.scale_x).clip(0, self.frame_w)
        out[:, 1::2] = ((boxes[:, 1::2] - self.pad_y) / self.scale_y).clip(0, self.frame_h)
        return out


def resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Shrink without aliasing at little cost.

    cv2.INTER_AREA is the right filter for shrinking, but it is only fast when
    both axes shrink by whole factors; otherwise it takes several ms on a
    640x360 frame against well under 1 ms for INTER_LINEAR. So: whole factors
    use INTER_AREA; anything else is halved per axis while at least twice too
    big (bilinear at exactly half size averages pixel pairs: a box filter,
    like area) and finished with bilinear at a factor below 2.
    """
    h, w = img.shape[:2]
    if w % width == 0 and h % height == 0:
        return img if (w, h) == (width, height) else cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
    while w >= 2 * width or h >= 2 * height:
        w, h = (w // 2 if w >= 2 * width else w), (h // 2 if h >= 2 * height else h)
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)


def letterbox(img: np.ndarray, width: int, height: int, pad_value: int = 114, align: str = "center") -> tuple[np.ndarray, Transform]:
    """Resize keeping the aspect ratio and pad the rest: image centred (Ultralytics
    YOLO) or in the top-left corner (YOLOX)."""
    h, w = img.shape[:2]
    s = min(width / w, height / h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    px, py = ((width - nw) // 2, (height - nh) // 2) if align == "center" else (0, 0)
    out = np.full((height, width, img.shape[2]), pad_value, dtype=img.dtype)
    out[py : py + nh, px : px + nw] = resize(img, nw, nh)
    # Use the rounded size so boxes map back exactly onto the pixels that were drawn.
    return out, Transform(nw / w, nh / h, float(px), float(py), w, h)


def stretch(img: np.ndarray, width: int, height: int) -> tuple[np.ndarray, Transform]:
    """Plain resize to the input size (aspect ratio not kept), as TF SSD models expect."""
    h, w = img.shape[:2]
    return resize(img, width, height), Transform(width / w, height / h, 0.0, 0.0, w, h)


def to_tensor(
    img: np.ndarray, *, rgb: bool, layout: str, dtype: str, scale: float, mean: tuple[float, float, float], std: tuple[float, float, float]
) -> np.ndarray:
    """HWC BGR uint8 image -> batch of one in the model's colour order, layout and dtype.

    Float inputs get (pixel * scale - mean) / std per channel (in model colour order);
    uint8 inputs are passed as pixels.
    """
    if dtype != "uint8" and layout == "NCHW" and not any(mean) and all(s == 1.0 for s in std):
        # Scale only (most YOLO exports): planes split by OpenCV, one float
        # multiply in numpy. About 10x faster than blobFromImage in OpenCV 5
        # (0.07 against 0.7 ms for 320x192), and the same float32 values for
        # every pixel value (tests/test_vision_pipeline.py checks all 256).
        planes = cv2.split(img)
        x = np.stack(planes[::-1] if rgb else planes)[None].astype(np.float32) * np.float32(scale)
        return x.astype(np.float16) if dtype == "float16" else x
    if dtype != "uint8" and layout == "NCHW":
        # One C++ pass (swap, subtract, scale, transpose): about 3x faster than numpy here.
        # blobFromImage computes (pixel - m) * f, so m = mean / scale and f = scale / std.
        std_v = np.asarray(std, np.float32)
        same_std = bool(np.all(std_v == std_v[0]))
        f = scale / float(std_v[0]) if same_std else scale
        blob = cv2.dnn.blobFromImage(img, f, mean=tuple(float(m) / scale for m in mean), swapRB=rgb)
        if not same_std:
            blob /= std_v.reshape(1, 3, 1, 1)
        return blob.astype(np.float16) if dtype == "float16" else blob
    x = img[:, :, ::-1] if rgb else img
    if dtype == "uint8":
        x = np.ascontiguousarray(x)
    else:
        x = x.astype(np.float32) * np.float32(scale)
        if any(mean) or any(s != 1.0 for s in std):
            x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
        x = x.astype(np.float16 if dtype == "float16" else np.float32, copy=False)
    if layout == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x[None])
