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
import threading
import time
from collections.abc import Sequence

import cv2
import numpy as np

_BOUNDARY = b"frameboundary"


class MjpegServer:
    def __init__(self, frames: Sequence[np.ndarray], fps: float = 10.0, host: str = "127.0.0.1", *, raw: bool = False) -> None:
        self.raw = raw
        self.jpegs: list[bytes] = []
        self.set_frames(frames)
        self.fps = fps
        self._sock = socket.create_server((host, 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self.url = f"tcp://{host}:{self.port}" if raw else f"http://{host}:{self.port}/stream.mjpg"
        self._down = threading.Event()
        self._stalled = threading.Event()
        self._stop = threading.Event()
        self.connections = 0
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> MjpegServer:
        self._accept.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._accept.join(2)
        for t in self._threads:
            t.join(2)
        self._sock.close()

    def set_frames(self, frames: Sequence[np.ndarray]) -> None:
        """Show other pictures from the next frame on (the scene in front of the camera changed)."""
        self.jpegs = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes() for f in frames]

    def set_stalled(self, stalled: bool) -> None:
        """Keep connections open but send nothing (a camera whose encoder froze)."""
        (self._stalled.set if stalled else self._stalled.clear)()

    def set_down(self, down: bool) -> None:
        (self._down.set if down else self._down.clear)()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            if self._down.is_set():
                conn.close()
                continue
            self.connections += 1
            t = threading.Thread(target=self._client, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _client(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(2.0)
            if not self.raw:
                conn.recv(4096)  # the request; any path serves the stream
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=" + _BOUNDARY + b"\r\n\r\n")
            i = 0
            start = time.monotonic()
            while not self._stop.is_set() and not self._down.is_set():
                if self._stalled.is_set():
                    time.sleep(0.05)
                    start = time.monotonic() - i / self.fps
                    continue
                jpg = self.jpegs[i % len(self.jpegs)]
                if self.raw:
                    conn.sendall(jpg)
                else:
                    conn.sendall(b"--" + _BOUNDARY + b"\r\nContent-Type: image/jpeg\r\nContent-Length: " + str(len(jpg)).encode() + b"\r\n\r\n" + jpg + b"\r\n")
                i += 1
                delay = start + i / self.fps - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        except OSError:
            pass
        finally:
            conn.close()
