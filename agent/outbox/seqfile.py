"""The sequence high-water mark kept beside the outbox database.

The database holds the next sequence number in the same transaction as the
readings, so while it is intact no number is skipped or reused. The file here
survives what the database may not: a corrupt database moved aside, or one a
technician deleted. It holds an upper bound of every number ever handed out;
numbers are reserved in blocks so the file is synced once per block, not once
per commit. A fresh database continues above that bound, so the hub sees a gap
(the readings in the lost file are gone) but never a reused number.
"""

from __future__ import annotations

import os


class SeqFile:
    def __init__(self, path: str) -> None:
        self.path = path

    def read(self) -> int:
        """The reserved bound, 0 if there is no file or it is unreadable."""
        try:
            with open(self.path, encoding="ascii") as fh:
                text = fh.read().strip()
        except FileNotFoundError:
            return 0
        except OSError:
            return 0
        try:
            return max(0, int(text))
        except ValueError:
            # A torn write cannot happen (rename is atomic), so this is damage;
            # the database's own counter still protects an intact store.
            return 0

    def write(self, bound: int) -> None:
        """Atomically replace the bound and make it durable before returning."""
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, str(bound).encode("ascii") + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dir_fd = os.open(os.path.dirname(os.path.abspath(self.path)), os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
