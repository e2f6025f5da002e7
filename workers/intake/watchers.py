"""What a running worker reloads when it changes on disk: the newest trained model, the documentation index."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import Engine

from config.desk import DeskConfig
from workers.intake.training import ModelStore, load_or_train
from classifiers.model import TrainedModels

if TYPE_CHECKING:  # imported with the first index file: a desk without one never needs them
    from classifiers.docs.index import DocsIndex
    from classifiers.docs.suggestions import Signposting


class ModelWatcher:
    """Keeps the newest trained model: checks the store now and then, swaps in a newer version."""

    CHECK_SECONDS = 30.0

    def __init__(self, store: ModelStore, desk: DeskConfig, engine: Engine) -> None:
        self.store = store
        self.current = load_or_train(desk, store, engine)
        self.on_change: Callable[[TrainedModels], None] | None = None
        self._checked = time.monotonic()
        self._lock = threading.Lock()

    def refresh(self) -> None:
        if time.monotonic() - self._checked < self.CHECK_SECONDS or not self._lock.acquire(blocking=False):
            return
        try:
            self._checked = time.monotonic()
            newest_version = self.store.newest_version()
            if newest_version is not None and newest_version != self.current.version:
                newest = self.store.newest()
                if newest is not None and newest.version != self.current.version:
                    self.current = newest
                    if self.on_change is not None:
                        self.on_change(newest)
                    structlog.get_logger("helpdesk.worker").info("classifier model updated", version=newest.version)
        finally:
            self._lock.release()


class DocsWatcher:
    """The documentation index of `helpdesk docs index`, reloaded when the file changes; no index, no suggestions."""

    CHECK_SECONDS = 30.0

    def __init__(self, path: Path, gap_score: float = 0.0) -> None:
        self.path = path
        self.gap_score = gap_score
        self.index: "DocsIndex | None" = None
        self._stamp: float | None = None
        self._checked = time.monotonic()
        self._lock = threading.Lock()
        self._reload()  # before the first message: every ticket gets suggestions once an index exists

    def current(self) -> "DocsIndex | None":
        if time.monotonic() - self._checked >= self.CHECK_SECONDS and self._lock.acquire(blocking=False):
            try:
                self._checked = time.monotonic()
                self._reload()
            finally:
                self._lock.release()
        return self.index

    def _reload(self) -> None:
        try:
            stamp: float | None = self.path.stat().st_mtime
        except OSError:
            stamp = None
        if stamp != self._stamp:
            self._stamp = stamp
            self.index = self._load() if stamp is not None else None

    def _load(self) -> "DocsIndex | None":
        from classifiers.docs.errors import DocsIndexError  # noqa: PLC0415
        from workers.intake.docs_index import load_index  # noqa: PLC0415

        try:
            index = load_index(self.path, gap_score=self.gap_score or None)
        except DocsIndexError as exc:
            structlog.get_logger("helpdesk.worker").warning("documentation index unusable; no suggestions", error=str(exc))
            return None
        structlog.get_logger("helpdesk.worker").info("documentation index loaded", pages=len(index.pages), path=str(self.path))
        return index

    def signpost(self, text: str, language: str) -> "Signposting | None":
        index = self.current()
        return index.signpost(text, k=3, language=language) if index is not None else None
