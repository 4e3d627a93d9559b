"""`diag camera snapshot` and `diag camera reference`.

Agent running: the vision worker renders the last analysed frame with lines,
zones, bin regions and current detections (agent.vision.snapshot) and the JPEG
is saved here, on the technician's laptop side. Agent stopped: the camera is
opened here and one frame is saved with the configured geometry drawn (no
detections: the model runs in the agent).
"""

from __future__ import annotations

import base64
import os
import time
from typing import Any

from agent.diag.context import CliError, Ctx


def _camera_config(ctx: Ctx, name: str) -> Any:
    cfg = ctx.need_config()
    for c in cfg.cameras:
        if c.name == name:
            return c
    raise CliError(f"no camera {name!r} in {ctx.config_path}", "known cameras: " + (", ".join(c.name for c in cfg.cameras) or "none"))


def run_snapshot(ctx: Ctx) -> int:
    a = ctx.args
    out = a.output or f"{a.camera}-{time.strftime('%Y%m%d-%H%M%S')}.jpg"
    client = ctx.agent()
    if client is not None:
        res = ctx.call("camera.snapshot", wait=40, camera=a.camera, blur_people=not a.no_blur)
        jpeg = base64.b64decode(res["jpeg_b64"])
        source = "the agent's last analysed frame, detections boxed"
        status = res.get("status") or {}
    else:
        cam = _camera_config(ctx, a.camera)
        ctx.note(f"{ctx.offline_reason}: opening {a.camera} directly (geometry drawn, no detections)")
        jpeg = offline_snapshot(cam)
        source = "a frame read directly from the camera"
        status = {}
    with open(out, "wb") as fh:
        fh.write(jpeg)
    if ctx.json:
        ctx.emit_json({"camera": a.camera, "file": os.path.abspath(out), "bytes": len(jpeg), "source": source, "status": status})
    else:
        extra = f"; {status.get('fps')} fps, {status.get('tracks', 0)} tracks" if status else ""
        print(f"saved {out} ({len(jpeg) / 1000:.0f} kB): {source}{extra}")
    return 0


def offline_snapshot(cam: Any) -> bytes:
    import cv2

    src: Any = cam.source
    if src.startswith("/dev/video") and src[10:].isdigit():
        src = int(src[10:])
    cap = cv2.VideoCapture(src)
    try:
        ok, frame = cap.read() if cap.isOpened() else (False, None)
    finally:
        cap.release()
    if not ok or frame is None:
        raise CliError(
            f"cannot read a frame from {cam.source}",
            "check the camera's cable/power or the stream URL and credentials; `v4l2-ctl --list-devices` lists local cameras",
        )
    h, w = frame.shape[:2]

    def pt(p: Any) -> tuple[int, int]:
        return int(p[0] * w), int(p[1] * h)

    for line in getattr(cam, "lines", []) or []:
        cv2.line(frame, pt(line.start), pt(line.end), (0, 220, 255), 2)
        cv2.putText(frame, line.name, pt(line.start), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 220, 255), 1)
    for zone in getattr(cam, "zones", []) or []:
        import numpy as np

        poly = np.array([pt(p) for p in zone.polygon], dtype=np.int32)
        cv2.polylines(frame, [poly], True, (230, 200, 0), 2)
        cv2.putText(frame, zone.name, tuple(poly[0]), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (230, 200, 0), 1)
    for b in getattr(cam, "bins", []) or []:
        x1, y1, x2, y2 = b.region
        cv2.rectangle(frame, pt((x1, y1)), pt((x2, y2)), (60, 200, 60), 2)
        cv2.putText(frame, b.name, pt((x1, y1)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (60, 200, 60), 1)
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise CliError("could not encode the frame as JPEG")
    return buf.tobytes()


def run_reference(ctx: Ctx) -> int:
    a = ctx.args
    client = ctx.agent()
    if client is None:
        raise CliError(
            f"the agent is not running ({ctx.offline_reason})",
            "references are recorded by the agent's vision worker from what it analyses: start the agent, then run this again",
        )
    res = ctx.call("camera.reference", wait=40, camera=a.camera, bin=a.bin, which=a.which)
    if ctx.json:
        ctx.emit_json(res)
    else:
        print(f"recorded the {a.which} reference of bin {a.bin} on {a.camera}: {res['saved']}")
        other = "full" if a.which == "empty" else "empty"
        print(ctx.style(f"record the {other} one too if not done yet; the fill level needs both", "dim"))
    return 0
