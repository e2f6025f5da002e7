"""The raw archive: every raw message and attachment, content-addressed.

Keeping the exact bytes lets a message be re-parsed and re-processed after a
parser or classifier changes, and lets staff see the original. Objects are
named by the sha256 of their content, so storing the same bytes twice is a
no-op and concurrent writers cannot conflict.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class RawArchive(ABC):
    """Content-addressed store. ``put`` returns only after the bytes are durable."""

    @abstractmethod
    def put(self, data: bytes) -> str:
        """Store ``data``; return its sha256 (hex)."""

    @abstractmethod
    def get(self, ref: str) -> bytes:
        """Return the bytes stored under ``ref``; KeyError if absent."""

    @abstractmethod
    def __contains__(self, ref: str) -> bool: ...

    @abstractmethod
    def delete(self, ref: str) -> bool:
        """Remove the bytes stored under ``ref`` (erasure, retention); True if there were any."""


class FileArchive(RawArchive):
    """Gzip-compressed files under ``root/ab/cd/<sha256>.gz``, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, ref: str) -> Path:
        if len(ref) != 64 or any(c not in "0123456789abcdef" for c in ref):
            raise KeyError(ref)
        return self.root / ref[:2] / ref[2:4] / f"{ref}.gz"

    def put(self, data: bytes) -> str:
        ref = sha256_hex(data)
        path = self._path(ref)
        if path.exists():
            return ref
        for folder in (self.root, path.parent.parent, path.parent):  # people's mail: readable by this user only
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")  # created 0600
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(gzip.compress(data, compresslevel=6, mtime=0))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return ref

    def get(self, ref: str) -> bytes:
        try:
            return gzip.decompress(self._path(ref).read_bytes())
        except FileNotFoundError as exc:
            raise KeyError(ref) from exc

    def __contains__(self, ref: str) -> bool:
        try:
            return self._path(ref).exists()
        except KeyError:
            return False

    def delete(self, ref: str) -> bool:
        try:
            self._path(ref).unlink()
        except (KeyError, FileNotFoundError):
            return False
        return True


class MemoryArchive(RawArchive):
    """In-memory twin of the archive."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put(self, data: bytes) -> str:
        ref = sha256_hex(data)
        self.objects.setdefault(ref, data)
        return ref

    def get(self, ref: str) -> bytes:
        return self.objects[ref]

    def __contains__(self, ref: str) -> bool:
        return ref in self.objects

    def delete(self, ref: str) -> bool:
        return self.objects.pop(ref, None) is not None
