"""People's data: everything held about one person, its erasure, and retention — the SQL of it.

Erasure removes or pseudonymises what identifies a person and what they wrote, but deletes
no row: tickets keep their type, sector, language, channel, team and times, messages stay
counted, contacts keep when they first wrote and their organisation — so every figure of
management information is the same before and after. What is removed:

- their identities' addresses (→ a stable pseudonym) and their display name;
- on their tickets, and on every message they sent: subjects, texts, HTML, names, addresses,
  headers, reports, attachment names, and the raw mail and attachment files (the caller
  deletes the files whose references this returns);
- the classification and routing *reasons* of their tickets (they quote their words);
- acknowledgement addresses, and quarantined or dead-lettered payloads that name them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Text, cast, func, or_, select, update

from storage.models import ACKNOWLEDGEMENT as ACK
from storage.models import CONTACT, CORRECTION, EVENT, IDENTITY, MESSAGE, ORGANISATION, QUARANTINE, TICKET

ERASED_SUBJECT = "[erased]"


@dataclass(frozen=True)
class Person:
    """Who the records say this is: the contacts found by an address, and every address they have."""

    contact_ids: tuple[int, ...]
    addresses: tuple[str, ...]


@dataclass
class Erased:
    contacts: int = 0
    identities: int = 0
    tickets: int = 0
    messages: int = 0
    quarantined: int = 0
    acknowledgements: int = 0
    files: set[str] = field(default_factory=set)  # raw and attachment references no longer needed by any row

    def counts(self) -> dict[str, int]:
        return {"contacts": self.contacts, "identities": self.identities, "tickets": self.tickets, "messages": self.messages,
                "quarantined": self.quarantined, "acknowledgements": self.acknowledgements, "files": len(self.files)}


def find_person(engine: Engine, address: str) -> Person | None:
    """The contacts with an identity at ``address`` (any channel, any case; ``@name`` for X), and all their addresses."""
    wanted = address.strip().lower()
    candidates = {wanted, wanted.removeprefix("@")}
    with engine.connect() as c:
        contacts = tuple(sorted(set(c.execute(select(IDENTITY.c.contact_id).where(func.lower(IDENTITY.c.address).in_(candidates))).scalars())))
        if not contacts:
            return None
        addresses = tuple(sorted({a.lower() for a in c.execute(select(IDENTITY.c.address).where(IDENTITY.c.contact_id.in_(contacts))).scalars()}))
    return Person(contacts, addresses)


def _their_messages(person: Person) -> Any:
    """Messages on their tickets, and messages they sent anywhere."""
    their_tickets = select(TICKET.c.id).where(TICKET.c.contact_id.in_(person.contact_ids))
    return or_(MESSAGE.c.ticket_id.in_(their_tickets), MESSAGE.c.contact_id.in_(person.contact_ids),
               func.lower(MESSAGE.c.sender_address).in_(person.addresses))


def _naming(column: Any, person: Person) -> Any:
    """Rows whose JSON or text in ``column`` names one of the person's addresses."""
    text = func.lower(func.coalesce(cast(column, Text()), ""))
    return or_(*(text.contains(a) for a in person.addresses))


def export(engine: Engine, person: Person, prefix: str) -> dict[str, Any]:
    """Every personal datum held about ``person``, as JSON-safe values (file contents are the caller's to add)."""
    with engine.connect() as c:
        contacts = []
        for row in c.execute(select(CONTACT, ORGANISATION.c.domain).outerjoin(ORGANISATION, ORGANISATION.c.id == CONTACT.c.organisation_id)
                             .where(CONTACT.c.id.in_(person.contact_ids))):
            identities = [{"channel": i.channel, "address": i.address, "since": i.created_at}
                          for i in c.execute(select(IDENTITY).where(IDENTITY.c.contact_id == row.id).order_by(IDENTITY.c.id))]
            contacts.append({"id": row.id, "name": row.display_name, "organisation": row.domain, "first_seen": row.created_at,
                             "identities": identities})
        tickets = [{"ticket": f"{prefix}-{t.id}", "subject": t.subject, "status": t.status, "channel": t.channel, "type": t.type,
                    "sector": t.sector, "language": t.language, "team": t.team, "created_at": t.created_at, "resolved_at": t.resolved_at,
                    "classification": t.classification, "routing": t.routing}
                   for t in c.execute(select(TICKET).where(TICKET.c.contact_id.in_(person.contact_ids)).order_by(TICKET.c.id))]
        messages = [{"id": m.id, "ticket": f"{prefix}-{m.ticket_id}" if m.ticket_id else None, "direction": m.direction, "kind": m.kind,
                     "channel": m.channel, "external_id": m.external_id, "from": {"address": m.sender_address, "name": m.sender_name},
                     "recipients": m.recipients, "subject": m.subject, "text": m.text, "html": m.html, "sent_at": m.sent_at,
                     "received_at": m.received_at, "attachments": m.attachments, "report": m.report, "headers": m.signals,
                     "raw_ref": m.raw_ref, "source": m.source}
                    for m in c.execute(select(MESSAGE).where(_their_messages(person)).order_by(MESSAGE.c.id))]
        corrections = [{"ticket": f"{prefix}-{r.ticket_id}", "field": r.field, "from": r.old_value, "to": r.new_value,
                        "by": r.corrected_by, "at": r.at}
                       for r in c.execute(select(CORRECTION).join(TICKET, TICKET.c.id == CORRECTION.c.ticket_id)
                                          .where(TICKET.c.contact_id.in_(person.contact_ids)))]
        acknowledgements = [{"ticket": f"{prefix}-{a.ticket_id}", "address": a.address, "at": a.at}
                            for a in c.execute(select(ACK).where(ACK.c.address.in_(person.addresses)))]
        quarantined = [{"id": q.id, "kind": q.kind, "reason": q.reason, "source": q.source, "created_at": q.created_at,
                        "raw_ref": q.raw_ref, "payload": q.payload}
                       for q in c.execute(select(QUARANTINE).where(or_(_naming(QUARANTINE.c.payload, person),
                                                                       _naming(QUARANTINE.c.detail, person))))]
    return {"addresses": list(person.addresses), "contacts": contacts, "tickets": tickets, "messages": messages,
            "corrections": corrections, "acknowledgements": acknowledgements, "quarantined": quarantined}


def erase(engine: Engine, person: Person, pseudonym: str) -> Erased:
    """Pseudonymise and empty everything of ``person`` in one transaction; returns counts and the files to delete."""
    done = Erased()
    with engine.begin() as c:
        done.files |= _message_files(c, select(MESSAGE.c.raw_ref, MESSAGE.c.attachments).where(_their_messages(person)))
        done.messages = _erase_messages(c, person, pseudonym)
        done.tickets = c.execute(update(TICKET).where(TICKET.c.contact_id.in_(person.contact_ids))
                                 .values(subject=ERASED_SUBJECT)).rowcount or 0
        for ticket in c.execute(select(TICKET.c.id, TICKET.c.classification, TICKET.c.routing)
                                .where(TICKET.c.contact_id.in_(person.contact_ids))).all():
            c.execute(update(TICKET).where(TICKET.c.id == ticket.id).values(
                classification=_without_reasons(ticket.classification), routing=_without_reasons(ticket.routing)))
        for n, identity in enumerate(c.execute(select(IDENTITY.c.id, IDENTITY.c.channel).where(
                IDENTITY.c.contact_id.in_(person.contact_ids)).order_by(IDENTITY.c.id)).all()):
            c.execute(update(IDENTITY).where(IDENTITY.c.id == identity.id).values(address=f"{pseudonym}-{n}"))
            done.identities += 1
        done.contacts = c.execute(update(CONTACT).where(CONTACT.c.id.in_(person.contact_ids))
                                  .values(display_name="Erased enquirer")).rowcount or 0
        done.acknowledgements = c.execute(update(ACK).where(ACK.c.address.in_(person.addresses)).values(address=pseudonym)).rowcount or 0
        naming = or_(_naming(QUARANTINE.c.payload, person), _naming(QUARANTINE.c.detail, person))
        done.files |= {r for r in c.execute(select(QUARANTINE.c.raw_ref).where(naming)).scalars() if r}
        done.quarantined = c.execute(update(QUARANTINE).where(naming).values(payload=None, detail=ERASED_SUBJECT, raw_ref=None)).rowcount or 0
        c.execute(update(EVENT).where(EVENT.c.kind == "message_edited", _naming(EVENT.c.data, person)).values(data={"erased": True}))
        done.files = {ref for ref in done.files if not _still_referenced(c, ref)}
    return done


def _erase_messages(c: Connection, person: Person, pseudonym: str) -> int:
    rows = c.execute(select(MESSAGE.c.id, MESSAGE.c.sender_address, MESSAGE.c.recipients, MESSAGE.c.attachments)
                     .where(_their_messages(person))).all()
    for row in rows:
        theirs = (row.sender_address or "").lower() in person.addresses
        recipients = [{**r, "address": pseudonym, "name": ""} if str(r.get("address", "")).lower() in person.addresses else r
                      for r in (row.recipients or []) if isinstance(r, dict)]
        attachments = [{"content_type": a.get("content_type"), "size": a.get("size")} for a in (row.attachments or []) if isinstance(a, dict)]
        values: dict[str, Any] = {"subject": ERASED_SUBJECT, "text": "", "new_text": None, "html": None, "report": None, "signals": None,
                                  "raw_ref": None, "attachments": attachments or None, "recipients": recipients or None, "defects": None,
                                  "error": None}
        if theirs:
            values.update(sender_address=pseudonym, sender_name="")
        c.execute(update(MESSAGE).where(MESSAGE.c.id == row.id).values(**values))
    return len(rows)


def _message_files(c: Connection, query: Any) -> set[str]:
    refs: set[str] = set()
    for raw_ref, attachments in c.execute(query):
        if raw_ref:
            refs.add(raw_ref)
        refs.update(a["sha256"] for a in (attachments or []) if isinstance(a, dict) and a.get("sha256"))
    return refs


def _still_referenced(c: Connection, ref: str) -> bool:
    """Whether a row not being erased still needs the file (the same bytes can belong to two messages)."""
    if c.execute(select(MESSAGE.c.id).where(MESSAGE.c.raw_ref == ref).limit(1)).first() is not None:
        return True
    if c.execute(select(QUARANTINE.c.id).where(QUARANTINE.c.raw_ref == ref).limit(1)).first() is not None:
        return True
    return c.execute(select(MESSAGE.c.id).where(cast(MESSAGE.c.attachments, Text()).contains(ref)).limit(1)).first() is not None


def _without_reasons(data: Any) -> Any:
    """Labels and confidences stay (they are counted); reasons and evidence go (they quote the person)."""
    if isinstance(data, dict):
        return {k: _without_reasons(v) for k, v in data.items() if k not in ("reasons", "reason", "evidence", "why", "matched")}
    if isinstance(data, list):
        return [_without_reasons(v) for v in data if not isinstance(v, str)]
    return data


# -- retention ---------------------------------------------------------------------------------
def expire(engine: Engine, before: datetime) -> Erased:
    """Bodies and raw mail of tickets resolved before ``before``, of automated mail and quarantine older than it."""
    done = Erased()
    closed = select(TICKET.c.id).where(TICKET.c.status == "resolved", TICKET.c.resolved_at < before)
    old = or_(MESSAGE.c.ticket_id.in_(closed), (MESSAGE.c.ticket_id.is_(None)) & (MESSAGE.c.received_at < before))
    has_body = or_(MESSAGE.c.text != "", MESSAGE.c.html.is_not(None), MESSAGE.c.raw_ref.is_not(None))
    with engine.begin() as c:
        done.files |= _message_files(c, select(MESSAGE.c.raw_ref, MESSAGE.c.attachments).where(old, has_body))
        done.messages = c.execute(update(MESSAGE).where(old, has_body).values(
            text="", new_text=None, html=None, raw_ref=None, signals=None)).rowcount or 0
        stale = (QUARANTINE.c.created_at < before) & (QUARANTINE.c.status != "open")
        done.files |= {r for r in c.execute(select(QUARANTINE.c.raw_ref).where(stale)).scalars() if r}
        done.quarantined = c.execute(update(QUARANTINE).where(stale, or_(QUARANTINE.c.payload.is_not(None), QUARANTINE.c.raw_ref.is_not(None)))
                                     .values(payload=None, raw_ref=None)).rowcount or 0
        done.files = {ref for ref in done.files if not _still_referenced(c, ref)}
    return done
