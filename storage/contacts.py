"""People across channels: a contact's identities (e-mail address, Slack user, X account), and two contacts made one.

A person who wrote by e-mail and then on X is two contacts until staff link them. Linking
moves every identity, ticket and message of one contact onto the other and records it
(a ``contact_merged`` metric event and an audit entry, both keyed, so running the same
link twice changes nothing). The emptied contact row stays — rows of ``contact`` are never
deleted, and a worker that cached its id keeps a valid one — and listings follow the
recorded merges, so a ticket filed on it meanwhile is still shown with the person.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, select, update

from storage import audit
from storage.events import event_row
from storage.models import CONTACT, EVENT, IDENTITY, MESSAGE, ORGANISATION, TICKET
from storage.upsert import insert_once

MERGED = "contact_merged"
_X_HANDLE = re.compile(r"^(?P<name>.*?)\s*\(@(?P<handle>[A-Za-z0-9_]{1,15})\)$")


@dataclass(frozen=True)
class Identity:
    channel: str
    address: str


@dataclass(frozen=True)
class Contact:
    id: int
    display_name: str
    organisation: str | None  # its domain
    created_at: datetime
    identities: tuple[Identity, ...]
    merged: tuple[int, ...]  # contacts linked into this one


@dataclass(frozen=True)
class Merge:
    into: int
    other: int
    linked: bool  # False: the two were one already
    identities: int = 0
    tickets: int = 0


def x_handle(display_name: str | None) -> tuple[str, str] | None:
    """(``@username``, name) from the display name intake gives an X sender ("Name (@username)"), else None."""
    found = _X_HANDLE.match(display_name or "")
    return (f"@{found['handle']}", found["name"]) if found else None


def label(channel: str | None, address: str | None, display_name: str | None) -> str:
    """How a person is named in a listing: ``@username (Name)`` on X, else the address (or the name)."""
    handle = x_handle(display_name)
    if handle is not None and (channel == "x" or not address or address.isdigit()):
        return f"{handle[0]} ({handle[1]})" if handle[1] else handle[0]
    return address or display_name or ""


def find(c: Connection, query: str) -> int | None:
    """The contact named by an e-mail address, ``@username`` (X), a Slack user id, or ``contact:N``."""
    text = query.strip()
    if text.startswith("contact:") and text[8:].isdigit():
        return c.execute(select(CONTACT.c.id).where(CONTACT.c.id == int(text[8:]))).scalar()
    if text.startswith("@"):
        handle = text[1:].lower().replace("\\", "").replace("%", "").replace("_", "\\_")
        found = c.execute(select(CONTACT.c.id).where(func.lower(CONTACT.c.display_name).like(f"%(@{handle})", escape="\\"))
                          .order_by(CONTACT.c.id)).scalar()
        if found is not None:
            return found
        text = text[1:]
    return c.execute(select(IDENTITY.c.contact_id).where(func.lower(IDENTITY.c.address) == text.lower()).order_by(IDENTITY.c.id)).scalar()


def related(c: Connection, contact_id: int) -> tuple[int, ...]:
    """The contact and every contact linked into it (followed through chains of links)."""
    merges = [(row.data or {}) for row in c.execute(select(EVENT.c.data).where(EVENT.c.kind == MERGED))]
    ids, frontier = {contact_id}, [contact_id]
    while frontier:
        current = frontier.pop()
        for data in merges:
            other = data.get("other")
            if data.get("into") == current and isinstance(other, int) and other not in ids:
                ids.add(other)
                frontier.append(other)
    return tuple(sorted(ids))


def get(c: Connection, contact_id: int) -> Contact | None:
    row = c.execute(select(CONTACT, ORGANISATION.c.domain).outerjoin(ORGANISATION, ORGANISATION.c.id == CONTACT.c.organisation_id)
                    .where(CONTACT.c.id == contact_id)).first()
    if row is None:
        return None
    ids = related(c, contact_id)
    identities = c.execute(select(IDENTITY.c.channel, IDENTITY.c.address).where(IDENTITY.c.contact_id.in_(ids))
                           .order_by(IDENTITY.c.channel, IDENTITY.c.address))
    return Contact(row.id, row.display_name or "", row.domain, row.created_at, tuple(Identity(ch, a) for ch, a in identities),
                   tuple(i for i in ids if i != contact_id))


def display_name(c: Connection, contact_id: int, *, lock: bool = False) -> str | None:
    """The contact's name; with ``lock``, the contact's row stays locked until the caller's transaction ends."""
    stmt = select(CONTACT.c.display_name).where(CONTACT.c.id == contact_id)
    return c.execute(stmt.with_for_update() if lock else stmt).scalar()


def name_of(engine: Engine, contact_id: int | None) -> str:
    """The contact's name ("" without a contact)."""
    if contact_id is None:
        return ""
    with engine.connect() as c:
        return display_name(c, contact_id) or ""


def merge(engine: Engine, into: int, other: int, *, by: str, surface: str, at: datetime) -> Merge:
    """Make ``other`` part of ``into``: identities, tickets and messages move; the link is recorded (event and audit)."""
    if into == other:
        return Merge(into, other, linked=False)
    with engine.begin() as c:
        found = {row.id: row for row in c.execute(select(CONTACT).where(CONTACT.c.id.in_((into, other)))).all()}
        if len(found) != 2:
            raise LookupError(f"no contact {other if into in found else into}")
        identities = [Identity(ch, a) for ch, a in c.execute(select(IDENTITY.c.channel, IDENTITY.c.address).where(IDENTITY.c.contact_id == other))]
        tickets = list(c.execute(select(TICKET.c.id).where(TICKET.c.contact_id == other)).scalars())
        data: dict[str, Any] = {"into": into, "other": other, "by": by, "display_name": found[other].display_name,
                                "identities": [[i.channel, i.address] for i in identities], "tickets": tickets}
        inserted = insert_once(c, EVENT, event_row(f"{MERGED}:{other}:{into}", MERGED, None, at, data), ["key"], EVENT.c.id)
        if inserted is None:
            return Merge(into, other, linked=False)
        c.execute(update(IDENTITY).where(IDENTITY.c.contact_id == other).values(contact_id=into))
        c.execute(update(TICKET).where(TICKET.c.contact_id == other).values(contact_id=into))
        c.execute(update(MESSAGE).where(MESSAGE.c.contact_id == other).values(contact_id=into))
        # the person first wrote when the earlier of the two did (new/returning enquirers in reports)
        earliest = min(found[into].created_at, found[other].created_at)
        organisation = found[into].organisation_id or found[other].organisation_id
        c.execute(update(CONTACT).where(CONTACT.c.id == into).values(created_at=earliest, organisation_id=organisation))
    audit.record(engine, f"{MERGED}:{other}:{into}", actor=by, surface=surface, action="contact.link", target=f"contact:{into}",
                 outcome="done", detail=data, at=at)
    return Merge(into, other, linked=True, identities=len(identities), tickets=len(tickets))
