"""Boot id, monotonic time and wall-clock sync detection.

A Raspberry Pi has no RTC: after a power cut it boots with the time of the last
shutdown (fake-hwclock) or 1970 until NTP or GPS sets it. Every reading is
therefore stamped with the boot id and a monotonic time that cannot jump, next
to the wall time and a flag saying whether the kernel considered the wall clock
synchronised. Readings stamped while unsynced are re-based by the outbox once
sync is seen (see agent.outbox).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import time
import uuid

from agent.readings import OK, Reading, Value

_BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
# CLOCK_BOOTTIME keeps counting across suspend, unlike CLOCK_MONOTONIC; both
# restart at zero on boot, which is what the boot id is for.
_MONO_CLOCK = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)


def read_boot_id() -> str:
    try:
        with open(_BOOT_ID_PATH, encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        # Not Linux: a random id per process is the honest fallback, since we
        # cannot tell two boots apart.
        return str(uuid.uuid4())


def mono_ns() -> int:
    return time.clock_gettime_ns(_MONO_CLOCK)


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h>; only `status` is read, the rest is
    # padding large enough for every libc layout (the kernel struct is 208 bytes
    # on 64-bit and 128 on 32-bit ARM).
    _fields_ = [("modes", ctypes.c_uint), ("_pad0", ctypes.c_long * 5), ("status", ctypes.c_int), ("_pad1", ctypes.c_long * 40)]


_STA_UNSYNC = 0x0040
_TIME_ERROR = 5


def kernel_clock_synced() -> bool | None:
    """Ask the kernel (adjtimex) whether NTP/chrony/timesyncd marked the clock synced.

    Returns None when it cannot be asked (not Linux, no libc).
    """
    libc_name = ctypes.util.find_library("c")
    if not libc_name or not hasattr(os, "uname") or os.uname().sysname != "Linux":
        return None
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        tx = _Timex()
        state = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != _TIME_ERROR and not (tx.status & _STA_UNSYNC)


class Clock:
    """The agent's one source of time stamps.

    `sync_source` decides how sync is detected:
    - "kernel": ask adjtimex (works with systemd-timesyncd, chrony and ntpd);
    - "assume": treat the wall clock as synced (a gateway with an RTC, tests, demo);
    - "never": treat it as unsynced until `mark_synced` is called (for example by
      a GPS driver that set the time).
    """

    def __init__(self, sync_source: str = "kernel", *, boot_id: str | None = None) -> None:
        self.boot_id = boot_id or read_boot_id()
        self.sync_source = sync_source
        self._external_sync = False
        self._synced_cache: bool | None = None
        self._checked_ns = 0

    def synced(self) -> bool:
        if self.sync_source == "assume" or self._external_sync:
            return True
        if self.sync_source == "never":
            return False
        now = mono_ns()
        # adjtimex is cheap but readings come by the thousand a second
        if self._synced_cache is None or now - self._checked_ns > 1_000_000_000:
            self._synced_cache = bool(kernel_clock_synced())
            self._checked_ns = now
        return self._synced_cache

    def mark_synced(self) -> None:
        """Called by a trusted time source (GPS) after it set the system time."""
        self._external_sync = True

    def reading(
        self,
        device: str,
        metric: str,
        value: Value,
        unit: str = "",
        *,
        status: str = OK,
        detail: str = "",
    ) -> Reading:
        return Reading(
            device,
            metric,
            value,
            unit,
            status=status,
            detail=detail,
            boot_id=self.boot_id,
            mono_ns=mono_ns(),
            wall=time.time(),
            synced=self.synced(),
        )
