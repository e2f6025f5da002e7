"""Staff corrections of classifications: applied to the ticket, kept as training data.

A correction changes the ticket's label, clears *needs triage*, writes a
``reclassified`` metric event and a ``correction`` row — all keyed, in one
transaction, so a retried Slack action or a repeated command counts once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Engine, func, select, update

from storage import events
from storage.models import CORRECTION, MESSAGE, TICKET, utcnow
from storage.upsert import insert_once
from storage.errors import UnknownTicket
Field = Literal["type", "sector"]


@dataclass(frozen=True)
class CorrectionResult:
    ticket_id: int
    field: str
    old_value: str | None
    new_value: str
    recorded: bool  # False when this key was recorded before


def record_correction(
    engine: Engine, *, ticket_id: int, field: Field, new_value: str, by: str, key: str, source: str = "cli", at: datetime | None = None
) -> CorrectionResult:
    at = at or utcnow()
    with engine.begin() as c:
        # the row lock keeps two corrections at once (type and sector) from each writing back the other's old JSON
        row = c.execute(select(TICKET.c.type, TICKET.c.sector, TICKET.c.classification).where(TICKET.c.id == ticket_id)
                        .with_for_update()).first()
        if row is None:
            raise UnknownTicket(ticket_id)
        old_value = row.type if field == "type" else row.sector
        if old_value == new_value and _latest_correction(c, ticket_id, field) == new_value:
            return CorrectionResult(ticket_id, field, old_value, new_value, recorded=False)  # staff said so already
        inserted = insert_once(c, CORRECTION, {"key": key, "ticket_id": ticket_id, "field": field, "old_value": old_value,
                                               "new_value": new_value, "corrected_by": by, "source": source, "at": at},
                               ["key"], CORRECTION.c.id)
        if inserted is None:
            return CorrectionResult(ticket_id, field, old_value, new_value, recorded=False)
        classification = dict(row.classification or {})
        entry = dict(classification.get(field) or {})
        entry.update(value=new_value, confidence=1.0, reasons=[f"corrected by {by} (was {old_value})"])
        classification[field] = entry
        changes: dict[str, Any] = {field: new_value, f"{field}_confidence": 1.0, "classification": classification, "updated_at": at}
        if field == "type":
            changes["needs_triage"] = False
        c.execute(update(TICKET).where(TICKET.c.id == ticket_id).values(**changes))
        events.record(c, f"reclassified:{key}", "reclassified", ticket_id, at,
                      {"field": field, "from": old_value, "to": new_value, "by": by, "source": source})
    return CorrectionResult(ticket_id, field, old_value, new_value, recorded=True)


def corrected_fields(c: Connection, ticket_id: int) -> set[str]:
    """The fields of the ticket staff corrected (a model's relabelling leaves them alone)."""
    return {r.field for r in c.execute(select(CORRECTION.c.field).where(CORRECTION.c.ticket_id == ticket_id))}


def _latest_correction(c: Connection, ticket_id: int, field: str) -> str | None:
    return c.execute(select(CORRECTION.c.new_value).where(CORRECTION.c.ticket_id == ticket_id, CORRECTION.c.field == field)
                     .order_by(CORRECTION.c.id.desc()).limit(1)).scalar()


def training_corrections(connection: Connection) -> list[dict[str, Any]]:
    """The latest correction per (ticket, field), with the ticket's opening message: subject, text, sender."""
    latest = (
        select(CORRECTION.c.ticket_id, CORRECTION.c.field, func.max(CORRECTION.c.id).label("id"))
        .group_by(CORRECTION.c.ticket_id, CORRECTION.c.field)
        .subquery()
    )
    opening = (
        select(MESSAGE.c.ticket_id, func.min(MESSAGE.c.id).label("id"))
        .where(MESSAGE.c.kind == "enquiry")
        .group_by(MESSAGE.c.ticket_id)
        .subquery()
    )
    rows = connection.execute(
        select(CORRECTION.c.ticket_id, CORRECTION.c.field, CORRECTION.c.new_value, CORRECTION.c.corrected_by,
               CORRECTION.c.at, MESSAGE.c.subject, MESSAGE.c.text, MESSAGE.c.sender_address)
        .join(latest, latest.c.id == CORRECTION.c.id)
        .join(opening, opening.c.ticket_id == CORRECTION.c.ticket_id)
        .join(MESSAGE, MESSAGE.c.id == opening.c.id)
        .order_by(CORRECTION.c.id)
    )
    return [dict(r._mapping) for r in rows]
