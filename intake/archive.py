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
import secrets
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class RawArchive(ABC):
    """Content-addressed store. ``put`` returns only after the bytes are durable."""

    @abstractmethod
    def put(self, data: bytes) -> str:
        """Store ``data``; return its sha256 (hex)."""

    def put_many(self, items: Sequence[bytes]) -> list[str]:
        """Store every item; return their sha256 (hex) in order, only after all of them are durable."""
        return [self.put(data) for data in items]

    @abstractmethod
    def get(self, ref: str) -> bytes:
        """Return the bytes stored under ``ref``; KeyError if absent."""

    @abstractmethod
    def __contains__(self, ref: str) -> bool: ...

    @abstractmethod
    def delete(self, ref: str) -> bool:
        """Remove the bytes stored under ``ref`` (erasure, retention); True if there were any."""


class FileArchive(RawArchive):
    """Gzip-compressed files under ``root/ab/cd/<sha256>.gz``, each written atomically (temporary file, fsync, rename).

    ``put_many`` writes a batch on a few threads at once: creating folders and files and fsyncing them are waits on
    the file system (≈ 1–4 ms each on a VM disk), which it overlaps and commits together instead of one after another.
    """

    WRITERS = 8  # concurrent writes of one put_many: enough for ext4/xfs to group their fsyncs into a few journal commits

    def __init__(self, root: Path) -> None:
        self.root = root
        self._folders: set[Path] = set()  # leaf folders known to exist (a put need not create them again)
        self._lock = threading.Lock()
        self._writers: ThreadPoolExecutor | None = None

    def _path(self, ref: str) -> Path:
        if len(ref) != 64 or any(c not in "0123456789abcdef" for c in ref):
            raise KeyError(ref)
        return self.root / ref[:2] / ref[2:4] / f"{ref}.gz"

    def put(self, data: bytes) -> str:
        ref = sha256_hex(data)
        self._store(ref, data)
        return ref

    def put_many(self, items: Sequence[bytes]) -> list[str]:
        refs = [sha256_hex(data) for data in items]
        todo = dict(zip(refs, items))  # the same bytes twice are stored once
        if len(todo) == 1:
            self._store(*next(iter(todo.items())))
        elif todo:
            pool = self._pool()
            writes = [pool.submit(self._store, ref, data) for ref, data in todo.items()]
            wait(writes)  # every write has ended (and cleaned up after itself) before a failure is raised
            for write in writes:
                write.result()
        return refs

    def _store(self, ref: str, data: bytes) -> None:
        path = self._path(ref)
        if path.exists():
            return
        fd, tmp = self._create_temporary(path)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(gzip.compress(data, compresslevel=6, mtime=0))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _create_temporary(self, path: Path) -> tuple[int, Path]:
        """A new file beside ``path``, readable by this user only (people's mail), in folders only they can list."""
        folder = path.parent
        if folder not in self._folders:
            for parent in (self.root, folder.parent, folder):
                parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._folders.add(folder)
        tmp = folder / f".tmp-{secrets.token_hex(8)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        try:
            return os.open(tmp, flags, 0o600), tmp
        except FileNotFoundError:  # the folder was removed since: create it again
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            return os.open(tmp, flags, 0o600), tmp

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._writers is None:
                self._writers = ThreadPoolExecutor(self.WRITERS, thread_name_prefix="archive-write")
            return self._writers

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
