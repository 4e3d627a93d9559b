"""Base images as Raspberry Pi OS ships them: .img, .img.xz and .zip.

Images are streamed, never unpacked to disk: a 3 GB .img.xz goes straight from
the decompressor to the card. The decompressed size is known before the first
byte is written (xz index, zip directory, file size), so a truncated download
is refused while the target is still untouched. Corruption inside the
compressed data (a CRC failure) can only show up while streaming; the writer
then reports the card as not verified.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

from .errors import FlashError

XZ_MAGIC = b"\xfd7zXZ\x00"
ZIP_MAGIC = b"PK\x03\x04"
REDOWNLOAD = "download the image again and compare its SHA-256 with the published one"


class HashingReader:
    """Hashes every byte read from the underlying file, for the inventory."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.digest.update(data)
        return data

    def readinto(self, buffer: memoryview) -> int:  # used by lzma's buffered reader
        n = self.raw.readinto(buffer)
        if n:
            self.digest.update(buffer[:n])
        return n

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.raw.close()


def _read_multibyte(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    for _ in range(9):
        if pos >= len(data):
            raise ValueError("xz index ends early")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise ValueError("xz index integer too long")


def xz_uncompressed_size(f: BinaryIO, file_size: int) -> int:
    """Sum of the uncompressed sizes in every stream's index, read from the end."""
    total = 0
    end = file_size
    while end > 0:
        f.seek(end - 4)
        while end >= 4 and f.read(4) == b"\x00\x00\x00\x00":  # stream padding
            end -= 4
            f.seek(end - 4)
        if end < 24:
            raise ValueError("file too short for an xz stream")
        f.seek(end - 12)
        footer = f.read(12)
        if footer[10:12] != b"YZ":
            raise ValueError("xz stream footer missing")
        backward = (struct.unpack_from("<I", footer, 4)[0] + 1) * 4
        index_start = end - 12 - backward
        if index_start < 12:
            raise ValueError("xz index out of range")
        f.seek(index_start)
        index = f.read(backward)
        if not index or index[0] != 0:
            raise ValueError("xz index indicator missing")
        count, pos = _read_multibyte(index, 1)
        blocks = 0
        for _ in range(count):
            unpadded, pos = _read_multibyte(index, pos)
            uncompressed, pos = _read_multibyte(index, pos)
            blocks += (unpadded + 3) & ~3
            total += uncompressed
        stream_start = index_start - blocks - 12
        if stream_start < 0:
            raise ValueError("xz blocks out of range")
        f.seek(stream_start)
        if f.read(6) != XZ_MAGIC:
            raise ValueError("xz stream header missing")
        end = stream_start
    return total


class ImageStream:
    """Decompressed image bytes, read front to back once."""

    def __init__(self, source: ImageSource) -> None:
        self.source = source
        self._raw = open(source.path, "rb")
        self._hasher: HashingReader | None = None
        self.position = 0
        try:
            if source.kind == "zip":
                self._zip = zipfile.ZipFile(self._raw)
                self._reader: BinaryIO = self._zip.open(source.member)
            else:
                if source.kind == "xz":
                    # the compressed file is small next to the image: hash it on the way through
                    self._hasher = HashingReader(self._raw)
                    self._reader = lzma.LZMAFile(self._hasher)  # type: ignore[assignment]
                else:
                    self._reader = self._raw
        except (zipfile.BadZipFile, lzma.LZMAError, OSError) as exc:
            self._raw.close()
            raise FlashError(f"cannot open {source.path}: {exc}", REDOWNLOAD) from exc

    def read(self, size: int) -> bytes:
        try:
            data = self._reader.read(size)
        except (lzma.LZMAError, EOFError, zipfile.BadZipFile, zlib.error, OSError) as exc:
            raise FlashError(f"{self.source.path} is corrupt at byte {self.position} of the decompressed image: {exc}", REDOWNLOAD) from exc
        self.position += len(data)
        return data

    def read_exact(self, size: int) -> bytes:
        parts = []
        remaining = size
        while remaining:
            chunk = self.read(min(remaining, 8 << 20))
            if not chunk:
                raise FlashError(f"{self.source.path} ends early: {self.position} of {self.source.size} bytes", REDOWNLOAD)
            parts.append(chunk)
            remaining -= len(chunk)
        return b"".join(parts)

    def file_sha256(self) -> str | None:
        """SHA-256 of the .xz file as given, once it was read to the end (None for .img and .zip)."""
        if self._hasher is None:
            return None
        while self._hasher.read(1 << 20):  # the decompressor may stop before trailing bytes
            pass
        return self._hasher.digest.hexdigest()

    def close(self) -> None:
        try:
            self._reader.close()
        finally:
            self._raw.close()

    def __enter__(self) -> ImageStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ImageSource:
    """A base image file and the size of the disk image it holds."""

    def __init__(self, path: Path, kind: str, size: int, member: str = "") -> None:
        self.path = path
        self.kind = kind
        self.size = size
        self.member = member

    @classmethod
    def open_path(cls, path: str | os.PathLike[str]) -> ImageSource:
        image = Path(path)
        if not image.is_file():
            raise FlashError(f"image {image} does not exist or is not a file", "give the path of a Raspberry Pi OS .img, .img.xz or .zip")
        file_size = image.stat().st_size
        with open(image, "rb") as f:
            magic = f.read(6)
            if magic.startswith(XZ_MAGIC) or image.suffix == ".xz":
                try:
                    size = xz_uncompressed_size(f, file_size)
                except (ValueError, OSError) as exc:
                    raise FlashError(f"{image} is not a complete .xz file ({exc})", REDOWNLOAD) from exc
                return cls(image, "xz", size)
            if magic.startswith(ZIP_MAGIC) or image.suffix == ".zip":
                try:
                    with zipfile.ZipFile(f) as archive:
                        members = [i for i in archive.infolist() if i.filename.lower().endswith(".img")]
                except (zipfile.BadZipFile, OSError) as exc:
                    raise FlashError(f"{image} is not a complete .zip file ({exc})", REDOWNLOAD) from exc
                if len(members) != 1:
                    raise FlashError(f"{image} holds {len(members)} .img files; expected exactly one", "unpack it and pass the .img you want")
                return cls(image, "zip", members[0].file_size, members[0].filename)
        return cls(image, "img", file_size)

    def stream(self) -> ImageStream:
        return ImageStream(self)

    def file_sha256(self) -> str:
        digest = hashlib.sha256()
        with open(self.path, "rb") as f:
            while chunk := f.read(4 << 20):
                digest.update(chunk)
        return digest.hexdigest()

    def describe(self) -> str:
        detail = f" ({self.member})" if self.member else ""
        return f"{self.path}{detail}: {self.kind}, {self.size / 1e6:.1f} MB disk image"
