"""sd_notify without libsystemd: READY, STATUS, STOPPING and the watchdog."""

from __future__ import annotations

import os
import socket


class Notifier:
    def __init__(self) -> None:
        self._addr = os.environ.get("NOTIFY_SOCKET", "")
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        enabled = usec.isdigit() and (not pid or pid == str(os.getpid()))
        # Feed at half the period systemd allows, as sd_watchdog_enabled advises.
        self.watchdog_interval = int(usec) / 2_000_000 if enabled else None

    @property
    def enabled(self) -> bool:
        return bool(self._addr)

    def notify(self, message: str) -> None:
        if not self._addr:
            return
        addr = self._addr
        if addr.startswith("@"):
            addr = "\0" + addr[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(addr)
                sock.sendall(message.encode())
        except OSError:
            pass  # systemd gone or not ours: nothing useful to do

    def ready(self, status: str = "") -> None:
        self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def status(self, status: str) -> None:
        self.notify(f"STATUS={status}")

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")
