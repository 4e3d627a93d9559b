"""Camera readers: one thread per camera that keeps only the newest frame.

Why a thread that always reads: an RTSP or HTTP camera pushes frames at its
own rate. If the analysis (a few frames a second) read from the stream
directly, frames would pile up in the socket and decoder buffers and the
counts would lag further and further behind reality. The reader drains the
stream as fast as it arrives and the analysis takes the newest frame; frames
overwritten before anyone took them are counted as dropped.

Video files are read in one of two ways: `realtime = true` paces them at their
own frame rate, exactly like a camera (the demo); `realtime = false` hands
every frame due at the detection rate, in media time, and waits for it to be
taken: nothing is dropped and the result does not depend on CPU speed (tests,
counting a recording).

A lost stream (a camera rebooting, a cable pulled, a file replaced) is
re-opened with capped exponential backoff; the thread never gives up.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from agent.vision.config import CameraConfig
from drivers.base import Backoff

_PREFETCH = 2  # frames decoded ahead when a file is analysed at media time
_URL_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "tcp://", "udp://", "rtmp://")


def source_kind(source: str) -> str:
    if source.startswith(_URL_SCHEMES):
        return "stream"
    if source.startswith("/dev/video") or source.isdigit():
        return "device"
    return "file"


def open_capture(source: str, timeout_s: float) -> cv2.VideoCapture:
    kind = source_kind(source)
    if kind == "device":
        dev: Any = int(source) if source.isdigit() else source
        return cv2.VideoCapture(dev, cv2.CAP_V4L2)
    if kind == "stream":
        # Without these the FFmpeg backend can block for minutes on a dead camera.
        ms = int(timeout_s * 1000)
        return cv2.VideoCapture(source, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
    return cv2.VideoCapture(source)


def _missing_hint(kind: str, source: str) -> str:
    if kind == "device":
        return f"video device {source} not found; plug the camera in (`ls /dev/video*` lists the devices) or fix the camera's `source`"
    return f"video file {source} not found; check the camera's `source` path"


def _open_hint(kind: str, source: str) -> str:
    if kind == "device":
        return (
            f"cannot open video device {source}; check that the agent's user is in the `video` group, "
            "that no other program holds the camera, and that it is a capture device (`v4l2-ctl --list-devices`)"
        )
    return f"cannot open {source}; check the address, the network and that the camera is on"


class Frame:
    __slots__ = ("seq", "image", "t", "captured")

    def __init__(self, seq: int, image: np.ndarray, t: float, captured: float) -> None:
        self.seq = seq
        self.image = image
        self.t = t  # media time (files, not realtime) or monotonic seconds
        self.captured = captured  # monotonic seconds when read, for latency


class FrameSource:
    """Reads one camera in a daemon thread. `take()` returns the newest frame
    not yet taken, or None."""

    def __init__(
        self,
        cam: CameraConfig,
        log: logging.Logger,
        *,
        opener: Callable[[str, float], Any] = open_capture,
    ) -> None:
        self.cam = cam
        self.log = log
        self.kind = source_kind(cam.source)
        self._opener = opener
        self._cond = threading.Condition()
        # live: only the newest frame; files at media time: a short queue so
        # the next frame is decoded while the current one is analysed
        self._frames: collections.deque[Frame] = collections.deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seq = 0
        self.state = "starting"  # starting | streaming | reconnecting | ended
        self.last_error = ""
        self.frames_read = 0
        self.frames_dropped = 0
        self.reconnects = 0
        self.last_frame_at = 0.0
        self.size: tuple[int, int] | None = None  # (w, h)

    # --- consumer side -------------------------------------------------
    def take(self) -> Frame | None:
        with self._cond:
            if not self._frames:
                return None
            f = self._frames.popleft()
            self._cond.notify_all()
            return f

    @property
    def finished(self) -> bool:
        return self.state == "ended" and not self._frames

    def stalled(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return self.state == "streaming" and self.last_frame_at > 0 and now - self.last_frame_at > self.cam.stall_timeout

    def stats(self) -> dict[str, Any]:
        return {
            "source": self.kind,
            "state": "stalled" if self.stalled() else self.state,
            "frames_read": self.frames_read,
            "frames_dropped": self.frames_dropped,
            "reconnects": self.reconnects,
            "last_error": self.last_error,
            "size": list(self.size) if self.size else None,
        }

    # --- reader thread -------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.cam.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def _publish(self, image: np.ndarray, t: float, *, wait: bool) -> None:
        now = time.monotonic()
        with self._cond:
            if wait:
                # files at media time: hand every due frame over, never drop
                while len(self._frames) >= _PREFETCH and not self._stop.is_set():
                    self._cond.wait(0.5)
            elif self._frames:
                self.frames_dropped += len(self._frames)
                self._frames.clear()
            self._seq += 1
            self._frames.append(Frame(self._seq, image, t, now))
            self.frames_read += 1
            self.last_frame_at = now
            self.size = (image.shape[1], image.shape[0])

    def _fail(self, msg: str) -> None:
        if msg != self.last_error:
            self.log.warning("camera %s: %s", self.cam.name, msg)
        self.last_error = msg
        self.state = "reconnecting"

    def _run(self) -> None:
        backoff = Backoff(0.5, self.cam.reconnect_max, 0.2)
        media_offset = 0.0  # media time carried across loops of a file
        while not self._stop.is_set():
            missing = self.kind in ("file", "device") and not self.cam.source.isdigit() and not os.path.exists(self.cam.source)
            if missing:
                cap = None
                self._fail(_missing_hint(self.kind, self.cam.source))
            else:
                cap = self._opener(self.cam.source, self.cam.stall_timeout)
                if not cap.isOpened():
                    cap.release()
                    cap = None
                    self._fail(_open_hint(self.kind, self.cam.source))
            if cap is None:
                self._stop.wait(backoff.next_delay())
                continue
            if self.state == "reconnecting":
                self.reconnects += 1
                self.log.info("camera %s: stream back", self.cam.name)
            self.state, self.last_error = "streaming", ""
            backoff.reset()
            try:
                end = self._read_loop(cap, media_offset)
            finally:
                cap.release()
            if end is None:  # stream lost
                self._fail(f"stream {self.cam.source} lost; re-opening")
                self._stop.wait(backoff.next_delay())
                continue
            media_offset = end
            if not self.cam.loop:
                self.state = "ended"
                return

    def _read_loop(self, cap: Any, media_offset: float) -> float | None:
        """Read until the stop flag, the end of a file (returns the media time
        reached) or a lost stream (returns None)."""
        is_file = self.kind == "file"
        fps = cap.get(cv2.CAP_PROP_FPS) if is_file else 0.0
        fps = fps if 1.0 <= fps <= 240.0 else 25.0
        paced = is_file and self.cam.realtime
        batch = is_file and not self.cam.realtime
        step = 1.0 / self.cam.detect_fps
        next_due = media_offset
        start = time.monotonic()
        index = 0
        while not self._stop.is_set():
            media_t = media_offset + index / fps
            if batch and media_t + 1e-6 < next_due:
                if not cap.grab():  # skipped frames are not decoded
                    return media_t if index else None
                index += 1
                continue
            ok, image = cap.read()
            if not ok or image is None:
                if is_file:
                    return media_t if index else None  # an empty or unreadable file counts as lost
                return None
            index += 1
            if paced:
                delay = start + index / fps - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
            if batch:
                next_due += step
                self._publish(image, media_t, wait=True)
            else:
                self._publish(image, time.monotonic(), wait=False)
        return media_offset + index / fps
