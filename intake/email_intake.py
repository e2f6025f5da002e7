"""Raw e-mail → archive → prescan → isolated parse → archive blobs → sink: the steps every e-mail adapter shares (files, IMAP).

No mail can stop intake: whatever goes wrong turning one item into an
InboundMessage — a bound of ``intake.prescan`` exceeded, a parser exception,
a parse helper that timed out, ran out of memory or died — quarantines that
item with its reason and detail, and the adapter goes on. Only failures of the
infrastructure propagate, so that the source keeps its watermark and retries:
``SinkError`` (the queue, or no parse helper could start) and ``OSError`` from
the raw archive.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

from intake.archive import RawArchive, sha256_hex
from intake.base import Rejected, Sink
from intake.errors import RejectedInput, SinkError
from intake.mime import Limits
from intake.parse_pool import EmailParser, PoolOptions, build_parser, describe
from intake.prescan import PrescanLimits, prescan
from intake.quoting import ReplySplitter

_DETAIL_CHARS = 4000  # Rejected.detail's limit


class EmailIngestor:
    """Turns raw bytes into a queued InboundMessage, or a queued quarantine record with the reason.

    Returns only after the sink accepted the result (the caller may then move its watermark).
    By default parsing runs in helper processes (``intake.parse_pool``) bounded by ``PoolOptions()``;
    pass ``parser`` (e.g. an ``InProcessParser``) or ``pool`` to choose otherwise. Call ``close``
    (or let the ingestor be collected) to stop the helpers.
    """

    def __init__(
        self,
        sink: Sink,
        archive: RawArchive,
        limits: Limits,
        splitter: ReplySplitter | None = None,
        clock: Callable[[], datetime] | None = None,
        *,
        prescan_limits: PrescanLimits | None = None,
        pool: PoolOptions | None = None,
        parser: EmailParser | None = None,
    ) -> None:
        self.sink = sink
        self.archive = archive
        self.limits = limits
        self.splitter = splitter or ReplySplitter()
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.prescan_limits = prescan_limits or PrescanLimits(max_raw_bytes=limits.max_raw_bytes)
        self.parser = parser or build_parser(limits, self.splitter, pool or PoolOptions())

    def ingest(self, raw: bytes, source: str) -> bool:
        """True if the raw input became a message, False if it was quarantined."""
        received_at = self.clock()
        raw_ref = self.archive.put(raw) if len(raw) <= self.limits.max_raw_bytes else None
        try:
            prescan(raw, self.prescan_limits)
            parsed = self.parser.parse(raw, received_at=received_at, source=source, raw_ref=raw_ref)
        except RejectedInput as exc:
            self.reject(raw_ref or sha256_hex(raw), exc.reason, exc.detail, source, raw_ref)
            return False
        except SinkError:
            raise
        except Exception as exc:  # noqa: BLE001 - one item's failure must never stop the adapter
            self.reject(raw_ref or sha256_hex(raw), "parse_error", describe(exc), source, raw_ref)
            return False
        for blob in parsed.blobs.values():
            self.archive.put(blob)
        self.sink.put(parsed.message)
        return True

    def reject(self, key: str, reason: str, detail: str, source: str, raw_ref: str | None = None) -> None:
        self.sink.reject(
            Rejected(channel="email", key=key, reason=reason[:100], detail=detail[:_DETAIL_CHARS], source=source[:2000],
                     raw_ref=raw_ref, received_at=self.clock())
        )

    def close(self) -> None:
        """Stop the parse helpers (a later ``ingest`` fails with SinkError)."""
        self.parser.close()

    def __enter__(self) -> "EmailIngestor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
