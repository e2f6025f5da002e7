"""The files adapter: ``.eml`` files, folders of them, mbox files and Maildirs.

Every item is archived raw, parsed, and handed to the sink — as an
InboundMessage, or as a Rejected record with the reason when it cannot be
parsed. Nothing read is dropped silently, and no item stops an import: one
that cannot be read (an unreadable file, a broken mbox entry) is quarantined
as ``unreadable``, one whose ingestion fails unexpectedly as ``adapter_error``
(``intake.supervision.ingest_isolated``); only the queue's failures raise.
Importing the same files twice is harmless: the pipeline deduplicates by
(channel, external id).
"""

from __future__ import annotations

import mailbox
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from intake.archive import sha256_hex
from intake.email_intake import EmailIngestor
from intake.supervision import ingest_isolated


@dataclass(frozen=True)
class RawItem:
    """Where one raw message can be read from."""

    source: str
    read: Callable[[], bytes]


@dataclass
class ImportResult:
    queued: int = 0
    rejected: int = 0


def discover(paths: list[Path]) -> list[RawItem]:
    """Every message under ``paths``, in a stable order. Raises FileNotFoundError for a missing path."""
    items: list[RawItem] = []
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(path)
        items.extend(_discover_one(path))
    return items


def _discover_one(path: Path) -> Iterator[RawItem]:
    try:
        found = list(_discover_path(path))
    except (OSError, mailbox.Error) as exc:  # an unreadable folder or mbox: one item that fails when read, not a failed import
        found = [RawItem(source=f"file:{path}", read=_failing(exc))]
    yield from found


def _failing(exc: Exception) -> Callable[[], bytes]:
    def read() -> bytes:
        raise exc

    return read


def _discover_path(path: Path) -> Iterator[RawItem]:
    if path.is_dir() and all((path / sub).is_dir() for sub in ("cur", "new", "tmp")):
        yield from _maildir_items(path)
    elif path.is_dir():
        for child in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
            if child.suffix.lower() in {".eml", ".mbox", ".mbx"}:
                yield from _discover_one(child)
    elif _looks_like_mbox(path):
        yield from _mbox_items(path)
    else:
        yield RawItem(source=f"file:{path}", read=path.read_bytes)


def _looks_like_mbox(path: Path) -> bool:
    if path.suffix.lower() in {".mbox", ".mbx"}:
        return True
    if path.suffix.lower() == ".eml":
        return False  # one message, perhaps with its envelope "From " line (the parser reads that as the Unix-from)
    with path.open("rb") as handle:
        return handle.read(5) == b"From "


def _mbox_items(path: Path) -> Iterator[RawItem]:
    box = mailbox.mbox(path, create=False)
    for key in box.keys():
        yield RawItem(source=f"mbox:{path}#{key}", read=lambda key=key: box.get_bytes(key))


def _maildir_items(path: Path) -> Iterator[RawItem]:
    box = mailbox.Maildir(path, factory=None, create=False)
    for key in sorted(box.keys()):
        yield RawItem(source=f"maildir:{path}#{key}", read=lambda key=key: box.get_bytes(key))


class FileAdapter:
    """Reads raw items and hands each to the e-mail ingestor (archive, parse, queue or quarantine)."""

    def __init__(self, ingestor: EmailIngestor) -> None:
        self.ingestor = ingestor

    def ingest(self, item: RawItem) -> bool:
        """Ingest one item; True if it became a message, False if it was quarantined."""
        try:
            raw = item.read()
        except Exception as exc:  # noqa: BLE001 - a file that cannot be read is that item's failure, not the import's
            detail = f"{type(exc).__name__}: {str(exc)[:1000]}"
            self.ingestor.reject(sha256_hex(item.source.encode()), "unreadable", detail, item.source)
            return False
        return ingest_isolated(self.ingestor, raw, item.source)

    def ingest_all(self, items: list[RawItem], progress: Callable[[RawItem], None] | None = None) -> ImportResult:
        result = ImportResult()
        with self.ingestor.sink.batched():  # queued in batches; all of it before this returns
            for item in items:
                if self.ingest(item):
                    result.queued += 1
                else:
                    result.rejected += 1
                if progress is not None:
                    progress(item)
        return result
