"""Read queries of the web dashboard: the filtered queue and one ticket with its conversation and history.

They take an engine and return plain frozen values; the web never sees a row or a session.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, case, func, literal, or_, select

from storage.models import CONTACT, EVENT, IDENTITY, MESSAGE, ORGANISATION, TICKET

OPEN = ("new", "open", "pending")
MAX_ROWS = 500


@dataclass(frozen=True)
class QueueFilter:
    """What the queue shows. Empty fields do not filter; ``status`` "open" means any open status, "all" any."""

    team: str = ""
    assignee: str = ""  # a key, "none" (unassigned)
    status: str = "open"
    type: str = ""
    sector: str = ""
    channel: str = ""
    language: str = ""
    needs_triage: bool = False
    search: str = ""
    after_id: int = 0  # only tickets newer than this (the page's live update)
    limit: int = 200


@dataclass(frozen=True)
class QueueRow:
    id: int
    subject: str
    status: str
    type: str
    sector: str
    language: str
    channel: str
    team: str
    assignee: str | None
    priority: str
    needs_triage: bool
    contact_name: str
    organisation: str | None
    created_at: datetime
    first_response_at: datetime | None
    first_response_due_at: datetime | None
    resolution_due_at: datetime | None
    sla_paused_at: datetime | None

    @property
    def due(self) -> tuple[str, datetime] | None:
        """The clock that runs now: first response until answered, then resolution."""
        if self.status not in OPEN:
            return None
        if self.first_response_at is None and self.first_response_due_at is not None:
            return ("first response", self.first_response_due_at)
        return ("resolution", self.resolution_due_at) if self.resolution_due_at is not None else None


def _due_column() -> Any:
    return case((TICKET.c.first_response_at.is_(None), TICKET.c.first_response_due_at), else_=TICKET.c.resolution_due_at)


def queue(engine: Engine, f: QueueFilter) -> list[QueueRow]:
    """Tickets matching ``f``, soonest due first (tickets without a clock last, newest first among them)."""
    where: list[Any] = []
    if f.status == "open":
        where.append(TICKET.c.status.in_(OPEN))
    elif f.status and f.status != "all":
        where.append(TICKET.c.status == f.status)
    for name in ("team", "type", "sector", "channel", "language"):
        value = getattr(f, name)
        if value:
            where.append(getattr(TICKET.c, name) == value)
    if f.assignee == "none":
        where.append(TICKET.c.assignee.is_(None))
    elif f.assignee:
        where.append(TICKET.c.assignee == f.assignee)
    if f.needs_triage:
        where.append(TICKET.c.needs_triage.is_(True))
    if f.after_id:
        where.append(TICKET.c.id > f.after_id)
    if f.search:
        where.append(_search(f.search))
    due = _due_column()
    stmt = (select(TICKET, CONTACT.c.display_name.label("contact_name"), ORGANISATION.c.domain.label("organisation"))
            .select_from(TICKET).outerjoin(CONTACT, CONTACT.c.id == TICKET.c.contact_id)
            .outerjoin(ORGANISATION, ORGANISATION.c.id == TICKET.c.organisation_id)
            .where(*where).order_by(case((due.is_(None), 1), else_=0), due, TICKET.c.id.desc())
            .limit(max(1, min(f.limit, MAX_ROWS))))
    with engine.connect() as c:
        return [_row(r) for r in c.execute(stmt)]


def _search(text: str) -> Any:
    """A ticket number (HD-12 or 12), or words in the subject, the enquirer's name or address."""
    text = text.strip()[:200]
    number = text.rsplit("-", 1)[-1]
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_").lower() + "%"
    address = select(IDENTITY.c.contact_id).where(func.lower(IDENTITY.c.address).like(pattern, escape="\\"))
    clauses = [func.lower(TICKET.c.subject).like(pattern, escape="\\"), func.lower(CONTACT.c.display_name).like(pattern, escape="\\"),
               TICKET.c.contact_id.in_(address)]
    if number.isdigit() and len(number) < 10:
        clauses.append(TICKET.c.id == int(number))
    return or_(*clauses)


def _row(r: Any) -> QueueRow:
    return QueueRow(r.id, r.subject, r.status, r.type, r.sector, r.language, r.channel, r.team, r.assignee, r.priority,
                    bool(r.needs_triage), r.contact_name or "", r.organisation, r.created_at, r.first_response_at,
                    r.first_response_due_at, r.resolution_due_at, r.sla_paused_at)


def newest_ticket_id(engine: Engine) -> int:
    with engine.connect() as c:
        return c.execute(select(func.coalesce(func.max(TICKET.c.id), literal(0)))).scalar_one()


@dataclass(frozen=True)
class ConversationMessage:
    id: int
    direction: str
    kind: str
    channel: str
    sender_name: str
    sender_address: str
    author: str | None
    subject: str
    text: str
    html: str | None
    at: datetime
    status: str | None
    error: str | None
    attachments: list[dict[str, Any]]
    thread_rule: str | None
    thread_reason: str | None
    automated_kind: str | None


@dataclass(frozen=True)
class HistoryEvent:
    at: datetime
    kind: str
    data: dict[str, Any]


@dataclass(frozen=True)
class TicketView:
    ticket: dict[str, Any]
    contact_name: str
    contact_addresses: tuple[str, ...]
    organisation: dict[str, Any] | None
    messages: tuple[ConversationMessage, ...] = ()
    history: tuple[HistoryEvent, ...] = field(default_factory=tuple)


def ticket_view(engine: Engine, ticket_id: int) -> TicketView | None:
    with engine.connect() as c:
        ticket = c.execute(select(TICKET).where(TICKET.c.id == ticket_id)).first()
        if ticket is None:
            return None
        t = dict(ticket._mapping)
        contact = c.execute(select(CONTACT.c.display_name).where(CONTACT.c.id == t["contact_id"])).scalar() if t["contact_id"] else None
        addresses = tuple(c.execute(select(IDENTITY.c.address).where(IDENTITY.c.contact_id == t["contact_id"]).order_by(IDENTITY.c.id))
                          .scalars()) if t["contact_id"] else ()
        org = c.execute(select(ORGANISATION).where(ORGANISATION.c.id == t["organisation_id"])).first() if t["organisation_id"] else None
        rows = c.execute(select(MESSAGE).where(MESSAGE.c.ticket_id == ticket_id).order_by(MESSAGE.c.received_at, MESSAGE.c.id)).all()
        events = c.execute(select(EVENT.c.at, EVENT.c.kind, EVENT.c.data).where(EVENT.c.ticket_id == ticket_id)
                           .order_by(EVENT.c.at, EVENT.c.id)).all()
    messages = tuple(ConversationMessage(
        m.id, m.direction, m.kind, m.channel, m.sender_name or "", m.sender_address or "", m.author, m.subject or "",
        (m.new_text if m.new_text else m.text) or "", m.html, m.received_at, m.status, m.error,
        [a for a in (m.attachments or []) if isinstance(a, dict)], m.thread_rule, m.thread_reason, m.automated_kind) for m in rows)
    return TicketView(t, contact or "", addresses, dict(org._mapping) if org is not None else None, messages,
                      tuple(HistoryEvent(e.at, e.kind, e.data or {}) for e in events))


def open_counts(engine: Engine) -> dict[str, int]:
    """Open tickets per team (the queue's side panel)."""
    with engine.connect() as c:
        rows = c.execute(select(TICKET.c.team, func.count()).where(TICKET.c.status.in_(OPEN)).group_by(TICKET.c.team))
        return {str(team): n for team, n in rows}




def row_of(view: TicketView) -> QueueRow:
    """The ticket of a ``TicketView`` as a queue row (for its SLA clock)."""
    t = view.ticket
    return QueueRow(t["id"], t["subject"], t["status"], t["type"], t["sector"], t["language"], t["channel"], t["team"], t["assignee"],
                    t["priority"], bool(t["needs_triage"]), view.contact_name, (view.organisation or {}).get("domain"), t["created_at"],
                    t["first_response_at"], t["first_response_due_at"], t["resolution_due_at"], t["sla_paused_at"])
