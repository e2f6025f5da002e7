"""Tickets: read one (locked for a change, or not), change it, and the lists the desk's jobs and Slack work through.

A ticket comes back as a ``Ticket`` (the table's model, detached from any
session): a snapshot to decide on. Functions taking a ``Connection`` work in
the caller's transaction (a desk operation's reads and writes commit
together); those taking an ``Engine`` are one short transaction each.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, and_, bindparam, func, or_, select, update

from storage.driver import hot
from storage.knowledge import implementation_stages
from storage.models import CONTACT, IDENTITY, MESSAGE, ORGANISATION, TICKET

if TYPE_CHECKING:
    from storage.models import Ticket

OPEN_STATUSES = ("new", "open", "pending")


@functools.cache
def _ticket_class() -> Any:
    from sqlalchemy.orm import class_mapper  # noqa: PLC0415

    from storage.models import Ticket  # noqa: PLC0415 - the model class is built on first use (storage/models.py)

    return class_mapper(Ticket).class_manager  # class_mapper: its mapping configured, as before a load


def _ticket(row: Any) -> Ticket:
    # As the ORM itself makes an object of a row it loaded (no __init__: that copies and sets each of the
    # ticket's 40-odd fields through two layers of hooks, a quarter of a desk operation's time)
    ticket = _ticket_class().new_instance()
    ticket.__dict__.update(row._mapping)
    return ticket


# Desk operations run these on every ticket they touch: built once, values bound at execution.
_GET = select(TICKET).where(TICKET.c.id == bindparam("ticket_pk"))
_GET_LOCKED = _GET.with_for_update()
_CHANGE = update(TICKET).where(TICKET.c.id == bindparam("ticket_pk"))  # the columns set are those bound


@functools.cache
def _loads(members: tuple[str, ...]) -> Any:
    """Open tickets per member of ``members``: built once per team (and member left out), its values written in, so that
    it runs on SQLite's cursor (``storage.driver``: an expanding ``IN`` would go through SQLAlchemy's execute each time)."""
    return (select(TICKET.c.assignee, func.count())
            .where(or_(*(TICKET.c.assignee == member for member in members)), or_(*(TICKET.c.status == s for s in OPEN_STATUSES)))
            .group_by(TICKET.c.assignee))


def get(c: Connection, ticket_id: int, *, lock: bool = False) -> Ticket | None:
    """The ticket; with ``lock``, its row is locked until the transaction ends (PostgreSQL; SQLite's writer lock already is)."""
    row = hot(c, _GET_LOCKED if lock else _GET).first(c, {"ticket_pk": ticket_id})
    return _ticket(row) if row is not None else None


def find(engine: Engine, ticket_id: int) -> Ticket | None:
    with engine.connect() as c:
        return get(c, ticket_id)


def status(engine: Engine, ticket_id: int) -> str | None:
    """The ticket's status; None if there is no such ticket."""
    with engine.connect() as c:
        return c.execute(select(TICKET.c.status).where(TICKET.c.id == ticket_id)).scalar()


def change(c: Connection, ticket_id: int, values: dict[str, Any]) -> None:
    """Set ``values`` on the ticket in the caller's transaction."""
    if values:
        hot(c, _CHANGE).run(c, {**values, "ticket_pk": ticket_id})


def with_running_clocks(engine: Engine) -> list[Ticket]:
    """New and open tickets whose SLA clock runs (not paused, with a resolution target): what the SLA job checks."""
    with engine.connect() as c:
        rows = c.execute(select(TICKET).where(TICKET.c.status.in_(("new", "open")), TICKET.c.sla_paused_at.is_(None),
                                              TICKET.c.resolution_due_at.is_not(None))).all()
    return [_ticket(r) for r in rows]


def waiting_for_assignee(engine: Engine) -> list[tuple[int, str]]:
    """(ticket, team) of new and open tickets nobody is assigned to, oldest first."""
    with engine.connect() as c:
        rows = c.execute(select(TICKET.c.id, TICKET.c.team).where(TICKET.c.assignee.is_(None), TICKET.c.status.in_(("new", "open")))
                         .order_by(TICKET.c.created_at, TICKET.c.id)).all()
    return [(r.id, r.team) for r in rows]


def unanswered_assigned(engine: Engine) -> list[tuple[int, str, str]]:
    """(ticket, team, assignee) of new and open tickets with an assignee and no first response yet."""
    with engine.connect() as c:
        rows = c.execute(select(TICKET.c.id, TICKET.c.team, TICKET.c.assignee).where(
            TICKET.c.status.in_(("open", "new")), TICKET.c.assignee.is_not(None), TICKET.c.first_response_at.is_(None))).all()
    return [(r.id, r.team, r.assignee) for r in rows]


def unresolved_of_team(engine: Engine, team: str) -> list[Ticket]:
    with engine.connect() as c:
        rows = c.execute(select(TICKET).where(TICKET.c.team == team, TICKET.c.status != "resolved")).all()
    return [_ticket(r) for r in rows]


def open_loads(c: Connection, members: Sequence[str]) -> dict[str, int]:
    """Open tickets per member, across every team they are in."""
    if not members:
        return {}
    return {assignee: count for assignee, count in hot(c, _loads(tuple(members))).all(c, {})}


# -- the Slack card ------------------------------------------------------------------------------
def of_card(engine: Engine, channel: str | None, ts: str) -> int | None:
    """The ticket whose current Slack card is the message ``ts`` in ``channel``."""
    with engine.connect() as c:
        return c.execute(select(TICKET.c.id).where(TICKET.c.card_ts == ts, TICKET.c.card_channel == channel)).scalar()


def set_card(engine: Engine, ticket_id: int, assignment: int, channel: str, ts: str) -> None:
    """Record the posted card, unless a card of a later assignment was recorded meanwhile (the newest card answers)."""
    with engine.begin() as c:
        c.execute(update(TICKET).where(TICKET.c.id == ticket_id, TICKET.c.assignment_count <= assignment)
                  .values(card_channel=channel, card_ts=ts))


@dataclass(frozen=True)
class EnquirerFacts:
    """Who asked and what, as the card shows it."""

    name: str = ""
    address: str = ""
    organisation: str = ""  # the organisation's name, else its domain
    domain: str = ""
    first_text: str = ""  # the enquirer's first message on the ticket
    stages: tuple[tuple[str, str], ...] = ()  # (standard, stage) of the organisation's implementations


def with_enquirer(source: Engine | Connection, ticket_id: int) -> tuple[Ticket, EnquirerFacts] | None:
    """A ticket with who asked (name, address — on the ticket's channel first —, organisation) and their first message."""
    if isinstance(source, Engine):
        with source.connect() as c:
            return with_enquirer(c, ticket_id)
    c = source
    ticket = get(c, ticket_id)
    if ticket is None:
        return None
    contact, identity, org = CONTACT, IDENTITY, ORGANISATION
    who = c.execute(select(contact.c.display_name, org.c.name, org.c.domain).select_from(contact.outerjoin(org, org.c.id == contact.c.organisation_id))
                    .where(contact.c.id == ticket.contact_id)).first() if ticket.contact_id else None
    address = c.execute(select(identity.c.address).where(identity.c.contact_id == ticket.contact_id)
                        .order_by((identity.c.channel == ticket.channel).desc(), identity.c.id).limit(1)).scalar() if ticket.contact_id else None
    first = c.execute(select(MESSAGE.c.text).where(MESSAGE.c.ticket_id == ticket_id, MESSAGE.c.direction == "in")
                      .order_by(MESSAGE.c.id).limit(1)).scalar() or ""
    org_domain = c.execute(select(org.c.domain).where(org.c.id == ticket.organisation_id)).scalar() if ticket.organisation_id else None
    return ticket, EnquirerFacts(name=who.display_name if who else "", address=address or "",
                                 organisation=(who.name or who.domain or "") if who else "", domain=org_domain or "",
                                 first_text=first, stages=implementation_stages(c, ticket.organisation_id))


# -- listings for Slack's /helpdesk ------------------------------------------------------------------
@dataclass(frozen=True)
class TicketLine:
    id: int
    subject: str
    type: str
    status: str
    first_response_due_at: datetime | None
    first_response_at: datetime | None
    card_channel: str | None
    card_ts: str | None


@dataclass(frozen=True)
class Listing:
    total: int
    lines: tuple[TicketLine, ...]  # the first ones, the most urgent first reply first


def open_listing(engine: Engine, *, assignee: str | None = None, unassigned_in: Sequence[str] | None = None, limit: int = 15) -> Listing:
    """Open tickets of ``assignee``, or unassigned open tickets of the teams ``unassigned_in``."""
    condition = TICKET.c.status.in_(OPEN_STATUSES)
    if assignee is not None:
        condition = and_(TICKET.c.assignee == assignee, condition)
    if unassigned_in is not None:
        condition = and_(TICKET.c.team.in_(list(unassigned_in)), TICKET.c.assignee.is_(None), condition)
    with engine.connect() as c:
        total = c.execute(select(func.count()).select_from(TICKET).where(condition)).scalar() or 0
        rows = c.execute(select(TICKET.c.id, TICKET.c.subject, TICKET.c.type, TICKET.c.status, TICKET.c.first_response_due_at,
                                TICKET.c.first_response_at, TICKET.c.card_channel, TICKET.c.card_ts)
                         .where(condition).order_by(TICKET.c.first_response_due_at.is_(None), TICKET.c.first_response_due_at, TICKET.c.id)
                         .limit(limit)).all()
    return Listing(total, tuple(TicketLine(*r) for r in rows))
