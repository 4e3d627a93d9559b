"""A technician's snapshot: the last analysed frame with the configured
lines, zones and bin regions drawn and the current detections boxed.

Frames never leave the device otherwise; this JPEG is made only when a
technician asks for it through the diagnostics socket. With `blur_people`,
every box labelled as a person is blurred beyond recognition first (only what
the model detected: a camera running a vehicle model cannot find people to
blur, which the docs say).
"""

from __future__ import annotations

import cv2
import numpy as np

from agent.vision.pipeline import CameraPipeline

PERSON_LABELS = {"person", "pedestrian", "people"}
_GREEN, _RED, _YELLOW, _CYAN, _WHITE = (60, 200, 60), (50, 50, 230), (0, 220, 255), (230, 200, 0), (255, 255, 255)


def blur_boxes(image: np.ndarray, boxes: np.ndarray) -> None:
    h, w = image.shape[:2]
    for x1, y1, x2, y2 in boxes:
        # a margin, because a detector's box can cut through a head
        mx, my = (x2 - x1) * 0.1, (y2 - y1) * 0.1
        a, b = max(int(x1 - mx), 0), max(int(y1 - my), 0)
        c, d = min(int(x2 + mx), w), min(int(y2 + my), h)
        if c - a < 2 or d - b < 2:
            continue
        roi = image[b:d, a:c]
        small = cv2.resize(roi, (max(1, (c - a) // 12), max(1, (d - b) // 12)), interpolation=cv2.INTER_AREA)
        image[b:d, a:c] = cv2.GaussianBlur(cv2.resize(small, (c - a, d - b), interpolation=cv2.INTER_LINEAR), (9, 9), 0)


def render(pipe: CameraPipeline, *, blur_people: bool, quality: int = 85) -> bytes:
    if pipe.last_image is None:
        raise LookupError(f"camera {pipe.cam.name} has not delivered a frame yet; check its status with `edge-agent diag status`")
    img = pipe.last_image.copy()
    h, w = img.shape[:2]
    if blur_people:
        people = [i for i, lab in enumerate(pipe.last_labels) if lab in PERSON_LABELS]
        blur_boxes(img, pipe.last_boxes[people])
        blur_boxes(img, np.array([tr.box for tr in pipe.tracks if tr.label in PERSON_LABELS]).reshape(-1, 4))
    states = pipe.zone_states()
    for z in pipe.zones:
        pts = z.polygon.astype(np.int32)
        colour = _RED if states.get(z.name) else _GREEN
        cv2.polylines(img, [pts], True, colour, 2)
        cv2.putText(img, f"{z.name}:{states.get(z.name)}", tuple(pts[0]), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1)
    for line in pipe.lines:
        a = (int(line.ax), int(line.ay))
        b = (int(line.ax + line.dx), int(line.ay + line.dy))
        cv2.line(img, a, b, _CYAN, 2)
        # arrow towards the side an "in" crossing ends on
        mx, my = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
        nx, ny = -line.dy / line.length, line.dx / line.length
        sign = -1 if line.cfg.invert else 1
        tip = (int(mx + sign * nx * 25), int(my + sign * ny * 25))
        cv2.arrowedLine(img, (int(mx), int(my)), tip, _CYAN, 2, tipLength=0.4)
        cv2.putText(img, f"{line.name} in", tip, cv2.FONT_HERSHEY_SIMPLEX, 0.4, _CYAN, 1)
    for bm in pipe.bins:
        x1, y1, x2, y2 = bm.cfg.region
        p1, p2 = (int(x1 * w), int(y1 * h)), (int(x2 * w), int(y2 * h))
        cv2.rectangle(img, p1, p2, _YELLOW, 2)
        lvl = bm.level
        cv2.putText(img, f"{bm.name} {'?' if lvl is None else f'{lvl:.0f}%'}", (p1[0], max(p1[1] - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, _YELLOW, 1)
    for tr in pipe.tracks:
        if not tr.updated:
            continue
        x1, y1, x2, y2 = (int(v) for v in tr.box)
        colour = _GREEN if tr.confirmed else _WHITE
        cv2.rectangle(img, (x1, y1), (x2, y2), colour, 1)
        cv2.putText(img, f"{tr.label} #{tr.id}", (x1, max(y1 - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.35, colour, 1)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()
