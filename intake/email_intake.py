"""Raw e-mail → archive → prescan → isolated parse → archive blobs → sink: the steps every e-mail adapter shares (files, IMAP).

No mail can stop intake: whatever goes wrong turning one item into an
InboundMessage — a bound of ``intake.prescan`` exceeded, a parser exception,
a parse helper that timed out, ran out of memory or died — quarantines that
item with its reason and detail, and the adapter goes on. Only failures of the
infrastructure propagate, so that the source keeps its watermark and retries:
``SinkError`` (the queue, or no parse helper could start) and ``OSError`` from
the raw archive.

Items read together (one IMAP fetch) go through ``ingest_many``: their raw bytes
archived in one durable write, parsed in parallel by the pool, and each one
queued or quarantined on its own, in order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timezone

from intake.archive import RawArchive, sha256_hex
from intake.base import Rejected, Sink
from intake.errors import RejectedInput
from intake.mime import Limits, ParsedEmail
from intake.parse_pool import EmailParser, ParseRequest, PoolOptions, build_parser, describe
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
        return self.ingest_many([(raw, source)])[0]

    def ingest_many(self, items: Sequence[tuple[bytes, str]]) -> list[bool]:
        """``ingest`` for items read together (one IMAP fetch), in order: the raw bytes archived in one durable
        write, parsed in parallel by the pool, each item quarantined or handed to the sink on its own."""
        received_at = self.clock()
        fits = [len(raw) <= self.limits.max_raw_bytes for raw, _ in items]
        stored = iter(self.archive.put_many([raw for (raw, _), fit in zip(items, fits) if fit]))
        raw_refs = [next(stored) if fit else None for fit in fits]
        outcomes: list[ParsedEmail | RejectedInput | None] = [None] * len(items)
        wanted: list[int] = []
        for index, (raw, _source) in enumerate(items):
            try:
                prescan(raw, self.prescan_limits)
                wanted.append(index)
            except RejectedInput as exc:
                outcomes[index] = exc
            except Exception as exc:  # noqa: BLE001 - one item's failure must never stop the adapter
                outcomes[index] = RejectedInput("parse_error", describe(exc))
        requests = [ParseRequest(items[i][0], received_at, items[i][1], raw_refs[i]) for i in wanted]
        for index, outcome in zip(wanted, self.parser.parse_many(requests)):
            outcomes[index] = outcome
        self.archive.put_many([blob for outcome in outcomes if isinstance(outcome, ParsedEmail) for blob in outcome.blobs.values()])
        queued: list[bool] = []
        for (raw, source), raw_ref, outcome in zip(items, raw_refs, outcomes):
            if isinstance(outcome, ParsedEmail):
                self.sink.put(outcome.message)
            else:  # a RejectedInput: prescan or the parser gave every item one or the other
                self.reject(raw_ref or sha256_hex(raw), outcome.reason, outcome.detail, source, raw_ref)  # type: ignore[union-attr]
            queued.append(isinstance(outcome, ParsedEmail))
        return queued

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
