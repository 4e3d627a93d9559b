"""Camera readers on real (small) video files: media-time hand-over,
newest-frame-only, a file that disappears and comes back."""

from __future__ import annotations

import logging
import os
import time

import cv2
import numpy as np

from agent.vision.config import CameraConfig
from agent.vision.sources import FrameSource, source_kind

LOG = logging.getLogger("test.sources")


def write_clip(path: str, n: int = 30, fps: float = 10.0) -> None:
    w = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    for i in range(n):
        img = np.zeros((48, 64, 3), np.uint8)
        img[:, :, 1] = i * 8  # the frame number, readable back from the green channel
        w.write(img)
    w.release()


def frame_no(img: np.ndarray) -> int:
    return int(round(float(img[:, :, 1].mean()) / 8))


def drain(src: FrameSource, limit_s: float = 20.0) -> list:
    out = []
    for _ in range(int(limit_s / 0.005)):
        f = src.take()
        if f is not None:
            out.append(f)
        elif src.finished:
            break
        else:
            time.sleep(0.005)
    return out


def test_source_kinds() -> None:
    assert source_kind("rtsp://10.0.0.2/s1") == "stream" and source_kind("http://cam/mjpg") == "stream"
    assert source_kind("tcp://127.0.0.1:5000") == "stream"
    assert source_kind("/dev/video0") == "device" and source_kind("0") == "device"
    assert source_kind("/var/lib/clips/a.avi") == "file"


def test_media_time_mode_hands_over_every_due_frame_in_order(tmp_path) -> None:
    path = str(tmp_path / "c.avi")
    write_clip(path, 30, 10.0)
    src = FrameSource(CameraConfig(name="c", source=path, realtime=False, detect_fps=5), LOG)
    src.start()
    frames = drain(src)
    src.stop()
    # 10 fps file at 5 fps of media time: frames 0, 2, 4, ... with their media times
    assert [frame_no(f.image) for f in frames] == list(range(0, 30, 2))
    assert [round(f.t, 3) for f in frames] == [round(i / 10, 3) for i in range(0, 30, 2)]
    assert src.frames_dropped == 0 and src.state == "ended"


def test_live_mode_keeps_only_the_newest_frame_and_counts_drops(tmp_path) -> None:
    path = str(tmp_path / "c.avi")
    write_clip(path, 30, 200.0)  # a fast "camera"
    src = FrameSource(CameraConfig(name="c", source=path, realtime=True), LOG)
    src.start()
    for _ in range(4000):
        if src.state == "ended":
            break
        time.sleep(0.005)
    last = src.take()
    src.stop()
    assert last is not None and frame_no(last.image) == 29  # nobody took frames: only the newest is kept
    assert src.frames_dropped == 29 and src.frames_read == 30


def test_missing_file_is_retried_until_it_appears(tmp_path) -> None:
    path = str(tmp_path / "later.avi")
    src = FrameSource(CameraConfig(name="c", source=path, realtime=False, detect_fps=10, reconnect_max=0.2), LOG)
    src.start()
    for _ in range(2000):
        if src.state == "reconnecting":
            break
        time.sleep(0.005)
    assert src.state == "reconnecting" and "not found" in src.last_error and "source" in src.last_error
    write_clip(str(tmp_path / "tmp.avi"), 10, 10.0)
    os.replace(tmp_path / "tmp.avi", path)
    frames = drain(src)
    src.stop()
    assert len(frames) == 10 and src.reconnects == 1 and src.last_error == ""


def test_missing_video_device_is_reported_and_retried() -> None:
    # no camera plugged in: the reader keeps retrying and says what to check
    dev = next(f"/dev/video{n}" for n in range(60, 100) if not os.path.exists(f"/dev/video{n}"))
    src = FrameSource(CameraConfig(name="c", source=dev, detect_fps=10, reconnect_max=0.2), LOG)
    src.start()
    for _ in range(2000):
        if src.state == "reconnecting":
            break
        time.sleep(0.005)
    time.sleep(0.3)  # a retry or two
    src.stop()
    assert src.state == "reconnecting" and src.take() is None
    assert f"video device {dev} not found" in src.last_error and "ls /dev/video" in src.last_error


def test_video_device_index_that_cannot_be_opened_says_what_to_check() -> None:
    # OpenCV's V4L2 backend itself is asked for camera 63, which does not exist
    assert not os.path.exists("/dev/video63")
    src = FrameSource(CameraConfig(name="c", source="63", detect_fps=10, reconnect_max=0.2), LOG)
    src.start()
    for _ in range(2000):
        if src.state == "reconnecting":
            break
        time.sleep(0.005)
    src.stop()
    assert src.state == "reconnecting"
    assert "cannot open video device 63" in src.last_error and "`video` group" in src.last_error
