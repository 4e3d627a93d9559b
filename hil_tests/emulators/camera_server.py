"""What every emulated network camera on loopback shares: a listening socket
that serves each client in a thread, the switches a test flips (down: drop
every client and refuse new ones; stalled: keep sessions open, send
nothing), and the frame clock that paces a stream at `fps`. A camera
protocol subclasses it with `encode` (frames to what it sends), `url` and
`client` (one connection)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np


class LoopbackCamera:
    def __init__(self, frames: Sequence[np.ndarray], fps: float = 10.0, host: str = "127.0.0.1") -> None:
        self.fps = fps
        self.encoded: list[Any] = []
        self.set_frames(frames)
        self._sock = socket.create_server((host, 0))
        self._sock.settimeout(0.2)
        self.host = host
        self.port = self._sock.getsockname()[1]
        self.connections = 0  # connections accepted
        self._down = threading.Event()
        self._stalled = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)

    # --- what a camera protocol provides ---------------------------------
    @property
    def url(self) -> str:
        raise NotImplementedError

    def encode(self, frames: Sequence[np.ndarray]) -> list[Any]:
        raise NotImplementedError

    def client(self, conn: socket.socket) -> None:
        raise NotImplementedError

    # --- what a test uses -------------------------------------------------
    def __enter__(self) -> LoopbackCamera:
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
        self.encoded = self.encode(frames)

    def set_stalled(self, stalled: bool) -> None:
        """Keep connections open but send nothing (a camera whose encoder froze)."""
        (self._stalled.set if stalled else self._stalled.clear)()

    def set_down(self, down: bool) -> None:
        """Drop every client and refuse new ones (power or network lost)."""
        (self._down.set if down else self._down.clear)()

    # --- for the protocol's client() -------------------------------------
    def serving(self) -> bool:
        return not self._stop.is_set() and not self._down.is_set()

    def ticks(self, ready: Callable[[], bool] = lambda: True) -> Iterator[int]:
        """Frame numbers at `fps` while serving; nothing is due while stalled
        or not `ready`, and the clock restarts from there afterwards."""
        i, start = 0, None
        while self.serving():
            if self._stalled.is_set() or not ready():
                time.sleep(0.02)
                start = None
                continue
            if start is None:
                start = time.monotonic() - i / self.fps
            yield i
            i += 1
            delay = start + i / self.fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)

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
            self.client(conn)
        except OSError:
            pass
        finally:
            conn.close()
