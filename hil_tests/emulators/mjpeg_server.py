"""An IP camera on loopback: MJPEG over HTTP (multipart/x-mixed-replace),
the format most cheap IP cameras serve, from frames you give it. It can be
taken down and brought back to test stream loss and recovery. With
`raw=True` it is an encoder that writes JPEG after JPEG to whoever connects
(a `tcp://` source), with no HTTP at all.

    with MjpegServer(frames, fps=10) as cam:
        url = cam.url            # http://127.0.0.1:<port>/stream.mjpg
        cam.set_stalled(True)    # connections stay open, nothing is sent
        cam.set_down(True)       # drops every client and refuses new ones
        cam.set_down(False)
        cam.set_frames(other_frames)   # the scene changed
"""

from __future__ import annotations

import socket
from collections.abc import Sequence

import cv2
import numpy as np

from hil_tests.emulators.camera_server import LoopbackCamera

_BOUNDARY = b"frameboundary"


class MjpegServer(LoopbackCamera):
    def __init__(self, frames: Sequence[np.ndarray], fps: float = 10.0, host: str = "127.0.0.1", *, raw: bool = False) -> None:
        self.raw = raw
        super().__init__(frames, fps, host)

    @property
    def url(self) -> str:
        return f"tcp://{self.host}:{self.port}" if self.raw else f"http://{self.host}:{self.port}/stream.mjpg"

    def encode(self, frames: Sequence[np.ndarray]) -> list[bytes]:
        return [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes() for f in frames]

    def client(self, conn: socket.socket) -> None:
        conn.settimeout(2.0)
        if not self.raw:
            conn.recv(4096)  # the request; any path serves the stream
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=" + _BOUNDARY + b"\r\n\r\n")
        for i in self.ticks():
            jpg = self.encoded[i % len(self.encoded)]
            if self.raw:
                conn.sendall(jpg)
            else:
                conn.sendall(b"--" + _BOUNDARY + b"\r\nContent-Type: image/jpeg\r\nContent-Length: " + str(len(jpg)).encode() + b"\r\n\r\n" + jpg + b"\r\n")
