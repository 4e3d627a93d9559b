"""Write an image to a card or file, then read it back and check it.

The first block (the partition table) is written as zeros first and for real
only after everything else is on the card and synced. A card whose write was
interrupted therefore has no partition table: it cannot boot half-written,
and the tool says so. Reading and writing overlap in two threads.

Verification reads the whole target back after dropping its cached pages. A
plain .img is verified by comparing every byte with a second read of the
source (cheap, from the page cache), so the write path carries no hashing at
all; compressed sources cannot be re-read cheaply, so their stream is hashed
while writing and the read-back hash is compared with it.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Iterator

from .errors import FlashError
from .progress import ProgressBar
from .target import Target

QUEUE_DEPTH = 4
_END = object()


class _Mismatch(Exception):
    """The read-back differs from the image at the given offset."""


class WriteResult:
    def __init__(self, sha256: str, size: int, write_seconds: float, verify_seconds: float) -> None:
        self.sha256 = sha256
        self.size = size
        self.write_seconds = write_seconds
        self.verify_seconds = verify_seconds

    @property
    def seconds(self) -> float:
        return self.write_seconds + self.verify_seconds


def interrupted(target: Target, done: int, total: int, reason: str) -> FlashError:
    return FlashError(
        f"the write to {target.path} stopped after {done / 1e6:.1f} of {total / 1e6:.1f} MB: {reason}. "
        "The card is NOT verified and has no partition table, so it will not boot.",
        "do not install it; fix the cause and run the same command again",
    )


def _take(handoff: queue.Queue[object], thread: threading.Thread) -> object:
    """Next item from a worker thread; never waits forever on a thread that died."""
    while True:
        try:
            return handoff.get(timeout=1.0)
        except queue.Empty:
            if not thread.is_alive() and handoff.empty():
                return RuntimeError(f"{thread.name} stopped without a result")


def _producer(chunks: Iterator[bytes], out: queue.Queue[object], digest: hashlib._Hash | None, stop: threading.Event) -> None:
    try:
        for chunk in chunks:
            if digest is not None:
                digest.update(chunk)  # overlaps with the write of the previous chunk
            while not stop.is_set():
                try:
                    out.put(chunk, timeout=0.5)
                    break
                except queue.Full:
                    continue
            if stop.is_set():
                return
        out.put(_END)
    except BaseException as exc:  # noqa: BLE001 -- handed to the writing thread, which reports it
        out.put(exc)


def _open_target(target: Target) -> int:
    flags = os.O_WRONLY | getattr(os, "O_CLOEXEC", 0)
    if target.kind == "device":
        flags |= os.O_EXCL  # the kernel refuses if anything mounted or opened it exclusively
    else:
        flags |= os.O_CREAT | os.O_TRUNC
    try:
        return os.open(target.path, flags, 0o644)
    except OSError as exc:
        if exc.errno in (16,):  # EBUSY
            raise FlashError(
                f"{target.path} is in use (mounted or opened by another program)", "unmount it and close other disk tools, then run again"
            ) from exc
        if exc.errno in (13, 30, 1):  # EACCES, EROFS, EPERM
            raise FlashError(
                f"{target.path} cannot be opened for writing: {exc.strerror}", "run with sudo for a card, check the lock switch, or pick a writable file"
            ) from exc
        raise FlashError(f"cannot open {target.path}: {exc.strerror}", "check the target") from exc


def write_image(chunks: Iterator[bytes], total: int, target: Target, progress: ProgressBar, hash_stream: bool = True) -> tuple[str, float]:
    """Write every chunk; return (sha256 of what was written, or "" without hash_stream; seconds)."""
    digest = hashlib.sha256() if hash_stream else None
    handoff: queue.Queue[object] = queue.Queue(maxsize=QUEUE_DEPTH)
    stop = threading.Event()
    thread = threading.Thread(target=_producer, args=(chunks, handoff, digest, stop), daemon=True, name="image-reader")
    fd = _open_target(target)
    done = 0
    first: bytes | None = None
    progress.start("writing")
    thread.start()
    try:
        while True:
            item = _take(handoff, thread)
            if item is _END:
                break
            if isinstance(item, BaseException):
                raise item
            chunk = item  # type: ignore[assignment]
            if first is None:
                first = bytes(chunk)  # type: ignore[arg-type]
                chunk = bytes(len(first))
            view = memoryview(chunk)  # type: ignore[arg-type]
            while view:
                written = os.write(fd, view)
                view = view[written:]
            done += len(chunk)  # type: ignore[arg-type]
            progress.update(done, total)
        if done != total:
            raise FlashError(f"the image produced {done} bytes, expected {total}")
        os.fsync(fd)
        if first is not None:
            os.pwrite(fd, first, 0)
            os.fsync(fd)
    except FlashError as exc:
        raise interrupted(target, done, total, exc.message) from exc
    except OSError as exc:
        raise interrupted(target, done, total, exc.strerror or str(exc)) from exc
    except KeyboardInterrupt as exc:
        raise interrupted(target, done, total, "interrupted by the user") from exc
    except RuntimeError as exc:
        raise interrupted(target, done, total, str(exc)) from exc
    finally:
        stop.set()
        os.close(fd)
        thread.join(timeout=5)
    return (digest.hexdigest() if digest else ""), progress.finish(done, total)


def _reader(fd: int, total: int, block: int, out: queue.Queue[object], stop: threading.Event) -> None:
    try:
        pos = 0
        while pos < total and not stop.is_set():
            data = os.pread(fd, min(block, total - pos), pos)
            if not data:
                out.put(OSError(0, f"the target ends after {pos} bytes"))
                return
            pos += len(data)
            while not stop.is_set():
                try:
                    out.put(data, timeout=0.5)
                    break
                except queue.Full:
                    continue
        out.put(_END)
    except BaseException as exc:  # noqa: BLE001 -- handed to the verifying thread
        out.put(exc)


class _Expected:
    """What the target should hold, consumed in step with the read-back whatever the chunk sizes."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.buffer = b""

    def take(self, size: int) -> bytes:
        if not self.buffer:
            self.buffer = next(self.chunks, b"")
        if len(self.buffer) == size:  # the usual case: same block size on both sides
            data, self.buffer = self.buffer, b""
            return data
        parts = bytearray(self.buffer)
        while len(parts) < size:
            more = next(self.chunks, b"")
            if not more:
                break
            parts += more
        self.buffer = bytes(parts[size:])
        return bytes(parts[:size])


def verify_image(
    target: Target, total: int, expected: str, block: int, progress: ProgressBar, expected_chunks: Iterator[bytes] | None = None
) -> tuple[str, float]:
    """Read back `total` bytes from the target; compare them byte for byte with expected_chunks
    when given, and their SHA-256 with `expected` when that is not empty. Returns (sha256, seconds)."""
    try:
        fd = os.open(target.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise FlashError(
            f"cannot read {target.path} back to verify it: {exc.strerror}. The card is NOT verified.", "run again; if it repeats, the card or reader is faulty"
        ) from exc
    digest = hashlib.sha256()
    handoff: queue.Queue[object] = queue.Queue(maxsize=QUEUE_DEPTH)
    stop = threading.Event()
    done = 0
    compare = _Expected(expected_chunks) if expected_chunks is not None else None
    progress.start("verify")
    try:
        if hasattr(os, "posix_fadvise"):
            # drop cached pages so the hash covers what the card holds, not what we handed the kernel
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        thread = threading.Thread(target=_reader, args=(fd, total, block, handoff, stop), daemon=True, name="verify-reader")
        thread.start()
        while True:
            item = _take(handoff, thread)
            if item is _END:
                break
            if isinstance(item, BaseException):
                raise item
            digest.update(item)  # type: ignore[arg-type]
            if compare is not None and compare.take(len(item)) != item:  # type: ignore[arg-type]
                raise _Mismatch(done)
            done += len(item)  # type: ignore[arg-type]
            progress.update(done, total)
    except _Mismatch as exc:
        raise FlashError(
            f"verification FAILED: {target.path} differs from the image in the block at byte {exc.args[0]}. The card is NOT verified.",
            "do not install it; the card or reader is probably faulty, use another one",
        ) from exc
    except OSError as exc:
        raise FlashError(
            f"reading {target.path} back failed after {done / 1e6:.1f} MB: {exc.strerror or exc}. The card is NOT verified.",
            "do not install it; try another card",
        ) from exc
    except KeyboardInterrupt as exc:
        raise FlashError(f"verification of {target.path} was interrupted. The card is NOT verified.", "run the same command again") from exc
    finally:
        stop.set()
        os.close(fd)
    seconds = progress.finish(done, total)
    if expected and digest.hexdigest() != expected:
        raise FlashError(
            f"verification FAILED: {target.path} does not hold what was written "
            f"(sha256 {digest.hexdigest()[:16]}... vs {expected[:16]}...). The card is NOT verified.",
            "do not install it; the card or reader is probably faulty, use another one",
        )
    return digest.hexdigest(), seconds
