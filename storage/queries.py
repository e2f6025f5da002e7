"""Read-side queries: ticket listings and management-information counts.

Definitions used in reports:
- ``tickets``: conversations opened by a person's enquiry (automated mail never opens one);
- ``messages``: inbound messages stored, every kind;
- ``duplicates``: deliveries of a message already stored (dropped, counted once per delivery);
- ``threaded``: inbound messages attached to an existing ticket (replies);
- ``automated``: auto-replies, bounces, list and bulk mail, recognised and kept out of tickets;
- ``quarantined``: input that could not be parsed or processed (rejected + dead letters).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, Engine, and_, case, func, or_, select, tuple_
from sqlalchemy.sql import ColumnElement

from storage.models import CONTACT, EVENT, IDENTITY, MESSAGE, ORGANISATION, QUARANTINE, TICKET


def _count(connection: Connection, table: Any, *where: Any) -> int:
    return connection.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def _group(connection: Connection, column: Any, *where: Any) -> dict[str, int]:
    rows = connection.execute(select(column, func.count()).where(*where).group_by(column).order_by(func.count().desc(), column))
    return {str(key): count for key, count in rows}


BREAKDOWNS = ("type", "sector", "team", "channel", "language", "status")


def summary(connection: Connection, since: datetime | None = None, until: datetime | None = None) -> dict[str, Any]:
    """Counts for ``helpdesk report``; ``since``/``until`` bound ticket creation and message receipt."""
    ticket_window = _window(TICKET.c.created_at, since, until)
    message_window = _window(MESSAGE.c.received_at, since, until)
    event_window = _window(EVENT.c.at, since, until)
    inbound = MESSAGE.c.direction == "in"
    data = {
        "messages": _count(connection, MESSAGE, inbound, *message_window),
        "duplicates": _count(connection, EVENT, EVENT.c.kind == "duplicate", *event_window),
        "threaded": _count(connection, MESSAGE, inbound, MESSAGE.c.kind == "reply", *message_window),
        "automated": _count(connection, MESSAGE, MESSAGE.c.kind == "automated", *message_window),
        "quarantined": _count(connection, QUARANTINE, *_window(QUARANTINE.c.created_at, since, until)),
        "automated_by_kind": _group(connection, MESSAGE.c.automated_kind, MESSAGE.c.kind == "automated", *message_window),
        "quarantined_by_reason": _group(connection, QUARANTINE.c.reason, *_window(QUARANTINE.c.created_at, since, until)),
        # new tickets whose best documentation match was weak: pages to write (see `helpdesk docs`)
        "docs_gaps": _count(connection, EVENT, EVENT.c.kind == "docs_gap", *event_window),
        "docs_gaps_by_type": _group(connection, TICKET.c.type, EVENT.c.kind == "docs_gap", EVENT.c.ticket_id == TICKET.c.id, *event_window),
    }
    data.update(ticket_breakdowns(connection, ticket_window))
    return data


def ticket_breakdowns(connection: Connection, where: list[Any]) -> dict[str, Any]:
    """tickets, needs_triage, by_<each breakdown>, type_by_sector — in one scan on PostgreSQL (GROUPING SETS)."""
    if connection.dialect.name != "postgresql":
        result: dict[str, Any] = {
            "tickets": _count(connection, TICKET, *where),
            "needs_triage": _count(connection, TICKET, TICKET.c.needs_triage.is_(True), *where),
        }
        for name in BREAKDOWNS:
            result[f"by_{name}"] = _group(connection, getattr(TICKET.c, name), *where)
        result["type_by_sector"] = type_by_sector(connection, where)
        return result
    # Two levels: a hash aggregate over every breakdown at once, then grouping sets over its few rows
    # (grouping sets straight over the tickets sort the whole period once per set).
    raw = [getattr(TICKET.c, name) for name in BREAKDOWNS]
    triaged = func.sum(case((TICKET.c.needs_triage.is_(True), 1), else_=0))
    fine = select(*raw, func.count().label("n"), triaged.label("t")).where(*where).group_by(*raw).subquery()
    columns = [getattr(fine.c, name) for name in BREAKDOWNS]
    sets = [tuple_(column) for column in columns] + [tuple_(fine.c.type, fine.c.sector), tuple_()]
    grouping = func.grouping(*columns).label("g")
    stmt = select(*columns, grouping, func.sum(fine.c.n).label("n"), func.sum(fine.c.t).label("triage"))
    rows = connection.execute(stmt.group_by(func.grouping_sets(*sets)))
    width = len(BREAKDOWNS)
    result = {f"by_{name}": {} for name in BREAKDOWNS} | {"type_by_sector": {}, "tickets": 0, "needs_triage": 0}
    for row in rows:
        grouped = [not (row.g >> (width - 1 - i)) & 1 for i in range(width)]
        n = int(row.n or 0)
        if not any(grouped):
            result["tickets"], result["needs_triage"] = n, int(row.triage or 0)
        elif grouped[0] and grouped[1]:
            result["type_by_sector"].setdefault(row[0], {})[row[1]] = n
        else:
            index = grouped.index(True)
            result[f"by_{BREAKDOWNS[index]}"][str(row[index])] = n
    for name in BREAKDOWNS:  # the order _group gives: most first
        result[f"by_{name}"] = dict(sorted(result[f"by_{name}"].items(), key=lambda kv: (-kv[1], kv[0])))
    return result


def type_by_sector(connection: Connection, where: list[Any]) -> dict[str, dict[str, int]]:
    rows = connection.execute(
        select(TICKET.c.type, TICKET.c.sector, func.count()).where(*where).group_by(TICKET.c.type, TICKET.c.sector)
    )
    table: dict[str, dict[str, int]] = {}
    for etype, sector, count in rows:
        table.setdefault(etype, {})[sector] = count
    return table


def _window(column: Any, since: datetime | None, until: datetime | None) -> list[Any]:
    clauses = []
    if since is not None:
        clauses.append(column >= since)
    if until is not None:
        clauses.append(column < until)
    return clauses


@dataclass(frozen=True)
class TicketFilter:
    """Which tickets a listing shows; every field left empty matches every ticket."""

    team: str | None = None
    assignee: str | None = None
    statuses: tuple[str, ...] = ()
    breached: bool = False
    needs_triage: bool = False
    contact_ids: tuple[int, ...] = ()
    exclude_ticket: int | None = None


OPEN = ("new", "open")  # the SLA clocks run (pending pauses them; resolved stops them)


def sla_breached(now: datetime) -> ColumnElement:
    """A clock missed: measured late, or still running past its due time (not while waiting on the enquirer)."""
    running = and_(TICKET.c.status.in_(OPEN), TICKET.c.sla_paused_at.is_(None))
    return or_(
        TICKET.c.first_response_met.is_(False),
        TICKET.c.resolution_met.is_(False),
        and_(running, TICKET.c.first_response_at.is_(None), TICKET.c.first_response_due_at < now),
        and_(running, TICKET.c.resolution_due_at < now),
    )


def _ticket_where(where: TicketFilter, now: datetime) -> list[Any]:
    clauses: list[Any] = []
    if where.team:
        clauses.append(TICKET.c.team == where.team)
    if where.assignee:
        clauses.append(TICKET.c.assignee == where.assignee)
    if where.statuses:
        clauses.append(TICKET.c.status.in_(where.statuses))
    if where.breached:
        clauses.append(sla_breached(now))
    if where.needs_triage:
        clauses.append(TICKET.c.needs_triage.is_(True))
    if where.contact_ids:
        clauses.append(TICKET.c.contact_id.in_(where.contact_ids))
    if where.exclude_ticket is not None:
        clauses.append(TICKET.c.id != where.exclude_ticket)
    return clauses


def list_tickets(connection: Connection, limit: int | None = None, where: TicketFilter | None = None,
                 now: datetime | None = None, *, only: int | None = None) -> list[dict[str, Any]]:
    """One row per ticket with its enquirer and ``sla_breached``, newest first."""
    now = now or datetime.now(timezone.utc)
    first_identity = (
        select(IDENTITY.c.contact_id, func.min(IDENTITY.c.address).label("address")).group_by(IDENTITY.c.contact_id).subquery()
    )
    stmt = (
        select(
            TICKET,
            CONTACT.c.display_name.label("contact_name"),
            first_identity.c.address.label("contact_address"),
            ORGANISATION.c.domain.label("organisation"),
            ORGANISATION.c.name.label("organisation_name"),
            select(func.count()).where(MESSAGE.c.ticket_id == TICKET.c.id).scalar_subquery().label("messages"),
            case((sla_breached(now), True), else_=False).label("sla_breached"),
        )
        .select_from(TICKET)
        .outerjoin(CONTACT, CONTACT.c.id == TICKET.c.contact_id)
        .outerjoin(first_identity, first_identity.c.contact_id == TICKET.c.contact_id)
        .outerjoin(ORGANISATION, ORGANISATION.c.id == TICKET.c.organisation_id)
        .where(*_ticket_where(where or TicketFilter(), now), *([TICKET.c.id == only] if only is not None else []))
        .order_by(TICKET.c.id.desc())
    )
    if limit:
        stmt = stmt.limit(limit)
    return [dict(row._mapping) | {"sla_breached": bool(row.sla_breached)} for row in connection.execute(stmt)]


def list_quarantine(connection: Connection, limit: int = 100) -> list[dict[str, Any]]:
    stmt = select(QUARANTINE).order_by(QUARANTINE.c.id.desc()).limit(limit)
    return [dict(row._mapping) for row in connection.execute(stmt)]


# Open quarantine: dead letters and rejected input neither replayed nor purged. `helpdesk dlq list` lists these rows and
# `helpdesk status` (the ``quarantined`` figure, /metrics, alerts) counts them. ``summary``'s ``quarantined`` differs on
# purpose: every row created in the period, whatever became of it since (management information).
_OPEN_QUARANTINE = QUARANTINE.c.status == "open"


def open_quarantine(connection: Connection) -> list[Any]:
    """Open quarantine rows, oldest first: what `helpdesk dlq list` shows."""
    return connection.execute(select(QUARANTINE).where(_OPEN_QUARANTINE).order_by(QUARANTINE.c.id)).all()


def open_quarantine_counts(connection: Connection) -> dict[str, int]:
    """How many open quarantine rows there are of each kind (``dead_letter``, ``rejected``): ``open_quarantine`` counted."""
    rows = connection.execute(select(QUARANTINE.c.kind, func.count()).where(_OPEN_QUARANTINE).group_by(QUARANTINE.c.kind))
    return {str(kind): count for kind, count in rows}


def ticket_total(connection: Connection) -> int:
    return _count(connection, TICKET)


def ticket_exists(connection: Connection, ticket_id: int) -> bool:
    return connection.execute(select(TICKET.c.id).where(TICKET.c.id == ticket_id)).first() is not None


def ticket_detail(connection: Connection, ticket_id: int, now: datetime | None = None) -> dict[str, Any] | None:
    """One ticket whole: its row (as ``list_tickets`` gives it), the conversation on every channel, oldest first,
    and the history of events; None when there is no such ticket."""
    rows = list_tickets(connection, where=TicketFilter(), now=now, only=ticket_id)
    if not rows:
        return None
    messages = connection.execute(
        select(MESSAGE.c.id, MESSAGE.c.direction, MESSAGE.c.kind, MESSAGE.c.channel, MESSAGE.c.sender_address, MESSAGE.c.sender_name,
               MESSAGE.c.subject, func.coalesce(MESSAGE.c.new_text, MESSAGE.c.text).label("text"), MESSAGE.c.received_at,
               MESSAGE.c.sent_at, MESSAGE.c.author, MESSAGE.c.status, MESSAGE.c.thread_reason)
        .where(MESSAGE.c.ticket_id == ticket_id).order_by(MESSAGE.c.received_at, MESSAGE.c.id)
    )
    events = connection.execute(
        select(EVENT.c.kind, EVENT.c.at, EVENT.c.data).where(EVENT.c.ticket_id == ticket_id).order_by(EVENT.c.at, EVENT.c.id)
    )
    return rows[0] | {"conversation": [dict(m._mapping) for m in messages], "events": [dict(e._mapping) for e in events]}


@dataclass(frozen=True)
class TicketMeasures:
    """What the Prometheus collector exports of the tickets (read at scrape time)."""

    by_channel_type_sector: tuple[tuple[str, str, str, int], ...]
    by_status: tuple[tuple[str, int], ...]
    confidence_at_most: tuple[int, ...]  # tickets whose type confidence is at most each bound, cumulative
    confidence_count: int
    confidence_sum: float
    sla_breaches: int  # ``sla_breached`` events ever recorded


def ticket_measures(engine: Engine, bounds: tuple[float, ...]) -> TicketMeasures:
    with engine.connect() as c:
        rows = c.execute(select(TICKET.c.channel, TICKET.c.type, TICKET.c.sector, func.count())
                         .group_by(TICKET.c.channel, TICKET.c.type, TICKET.c.sector)).all()
        buckets = c.execute(select(*[func.sum(case((TICKET.c.type_confidence <= b, 1), else_=0)) for b in bounds],
                                   func.count(), func.coalesce(func.sum(TICKET.c.type_confidence), 0.0))).one()
        breaches = _count(c, EVENT, EVENT.c.kind == "sla_breached")
        statuses = c.execute(select(TICKET.c.status, func.count()).group_by(TICKET.c.status)).all()
    return TicketMeasures(
        by_channel_type_sector=tuple((ch, t, s, n) for ch, t, s, n in rows),
        by_status=tuple((status, n) for status, n in statuses),
        confidence_at_most=tuple(int(buckets[i] or 0) for i in range(len(bounds))),
        confidence_count=int(buckets[-2] or 0),
        confidence_sum=float(buckets[-1] or 0),
        sla_breaches=breaches,
    )
