"""Raw e-mail → archive → parse → sink: the steps every e-mail adapter shares (files, IMAP)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

from intake.archive import RawArchive, sha256_hex
from intake.base import Rejected, Sink
from intake.errors import RejectedInput
from intake.mime import Limits, parse_email
from intake.quoting import ReplySplitter


class EmailIngestor:
    """Turns raw bytes into a queued InboundMessage, or a queued quarantine record with the reason.

    Returns only after the sink accepted the result (the caller may then move its watermark).
    """

    def __init__(
        self,
        sink: Sink,
        archive: RawArchive,
        limits: Limits,
        splitter: ReplySplitter | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.sink = sink
        self.archive = archive
        self.limits = limits
        self.splitter = splitter or ReplySplitter()
        self.clock = clock or (lambda: datetime.now(timezone.utc))

    def ingest(self, raw: bytes, source: str) -> bool:
        """True if the raw input became a message, False if it was quarantined."""
        received_at = self.clock()
        raw_ref = self.archive.put(raw) if len(raw) <= self.limits.max_raw_bytes else None
        try:
            parsed = parse_email(
                raw, received_at=received_at, source=source, raw_ref=raw_ref, limits=self.limits, splitter=self.splitter
            )
        except RejectedInput as exc:
            self.reject(sha256_hex(raw), exc.reason, exc.detail, source, raw_ref)
            return False
        for blob in parsed.blobs.values():
            self.archive.put(blob)
        self.sink.put(parsed.message)
        return True

    def reject(self, key: str, reason: str, detail: str, source: str, raw_ref: str | None = None) -> None:
        self.sink.reject(
            Rejected(channel="email", key=key, reason=reason, detail=detail, source=source, raw_ref=raw_ref, received_at=self.clock())
        )
