"""Re-processing stored tickets after the parser or the classifier changed.

For each ticket the opening message is classified again with the current
model — from its archived raw source when ``reparse`` is asked for, so that
parser improvements (quote separation, charsets) apply too. Labels staff
corrected are never overwritten. Each change is a ``reclassified`` metric
event keyed by ticket, field and model version: running it twice changes
nothing more.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from classifiers.pipeline import EnquiryClassifier
from intake.archive import RawArchive
from intake.mime import Limits, parse_email
from intake.quoting import ReplySplitter
from storage import events, messages, tickets
from storage.corrections import corrected_fields
from storage.events import event_row
from storage.models import utcnow


@dataclass
class ReprocessResult:
    tickets: int = 0
    changed: dict[str, int] = field(default_factory=lambda: {"type": 0, "sector": 0, "language": 0})
    reparsed: int = 0
    kept_corrections: int = 0
    changes: list[dict[str, Any]] = field(default_factory=list)


def opening_messages(engine: Engine, ticket_ids: list[int] | None, since: datetime | None, until: datetime | None) -> list[Any]:
    """The opening message of each ticket to re-process, with the ticket's current labels (``t_type``, ``t_sector`` …)."""
    return messages.openings(engine, ticket_ids, since, until)


def reprocess(
    engine: Engine,
    classifier: EnquiryClassifier,
    rows: list[Any],
    *,
    archive: RawArchive | None = None,
    limits: Limits = Limits(),
    splitter: ReplySplitter | None = None,
    dry_run: bool = False,
    progress: Callable[[], None] | None = None,
) -> ReprocessResult:
    result = ReprocessResult()
    for row in rows:
        result.tickets += 1
        subject, text, full, reparsed = _texts(row, archive, limits, splitter)
        result.reparsed += reparsed
        labels = classifier.classify(subject=subject, text=text, sender=row.sender_address, sector_text=full)
        new = {"type": labels.type, "sector": labels.sector, "language": labels.language}
        with engine.begin() as c:
            changes = _changes(row, new, corrected_fields(c, row.ticket_id), result)
            if changes and not dry_run:
                _apply(c, row, new, changes, classifier.version)
        result.changes.extend({"ticket": row.ticket_id, **change} for change in changes)
        if progress is not None:
            progress()
    return result


def _texts(row: Any, archive: RawArchive | None, limits: Limits, splitter: ReplySplitter | None) -> tuple[str, str, str, int]:
    """(subject, new text, full text, 1 if re-parsed from the raw source)."""
    if archive is not None and row.raw_ref and row.raw_ref in archive:
        try:
            message = parse_email(archive.get(row.raw_ref), received_at=row.received_at, source=row.source, raw_ref=row.raw_ref,
                                  limits=limits, splitter=splitter).message
            return message.subject, message.fresh_text, message.text, 1
        except Exception:  # noqa: BLE001 - an unparseable original keeps its stored text
            pass
    return row.subject, row.new_text if row.new_text is not None else row.text, row.text, 0


def _changes(row: Any, new: dict[str, Any], corrected: set[str], result: ReprocessResult) -> list[dict[str, Any]]:
    current = {"type": row.t_type, "sector": row.t_sector, "language": row.t_language}
    changes = []
    for name, label in new.items():
        if label.value == current[name]:
            continue
        if name in corrected:
            result.kept_corrections += 1
            continue
        result.changed[name] += 1
        changes.append({"field": name, "from": current[name], "to": label.value})
    return changes


def _apply(c: Any, row: Any, new: dict[str, Any], changes: list[dict[str, Any]], version: str) -> None:
    classification = dict(row.t_classification or {})
    values: dict[str, Any] = {"updated_at": utcnow()}
    for change in changes:
        label = new[change["field"]]
        values[change["field"]] = label.value
        values[f"{change['field']}_confidence"] = label.confidence
        classification[change["field"]] = label.to_dict()
    values["classification"] = classification
    tickets.change(c, row.ticket_id, values)
    events.record_many(c, [
        event_row(f"reprocess:{row.ticket_id}:{ch['field']}:{version}", "reclassified", row.ticket_id, utcnow(),
                  {**ch, "by": f"reprocess (model {version})"}, row.channel)
        for ch in changes
    ])
