"""Idempotent writes of the intake pipeline, one transaction per message.

Every write is keyed: the message by (channel, external_id), contacts by
(channel, address), organisations by domain, metric events and quarantine
entries by their key. Inserts use the dialect's ``ON CONFLICT DO NOTHING``
against those unique constraints, so concurrent duplicates — two workers
handed the same message — resolve in the database: exactly one insert wins,
the other sees the winner's row once it commits.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, and_, bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Dialect

from storage import tickets
from storage.events import event_row
from storage.intake_records import Automated, Duplicate, NewTicket, Opened, Reply
from storage.models import CONTACT, EVENT, IDENTITY, MESSAGE, ORG_DOMAIN, ORGANISATION, OUTBOX, QUARANTINE, TICKET
from storage.outbox import new_row
from storage.db import one_writer, reading
from storage.driver import Hot
from storage.errors import LostRace
from storage.upsert import on_conflict

if TYPE_CHECKING:
    from storage.models import Ticket

__all__ = ["CONTACT", "EVENT", "IDENTITY", "MESSAGE", "ORG_DOMAIN", "ORGANISATION", "QUARANTINE", "TICKET",
           "AlreadyStored", "IntakeStore", "IntakeTx", "LostRace"]


@dataclass(frozen=True)
class AlreadyStored:
    """A row with this (channel, external_id) exists already."""

    message_pk: int
    ticket_id: int | None
    content_hash: str
    delivery_id: str | None
    source: str = ""


class _Statements:
    """Every statement of the hot path, built once; values are bound at execution.

    Building a statement per call with ``.values(**row)`` costs more than the
    database round trip (SQLAlchemy coerces and cache-keys every value);
    prepared constants hit the compiled cache.
    """

    def __init__(self, engine_dialect: Dialect) -> None:
        dialect = engine_dialect.name
        p = bindparam
        hot = functools.partial(Hot, dialect=engine_dialect)  # what every message runs: on SQLite on the driver's cursor (storage.driver)
        self.claim = hot(on_conflict(dialect, MESSAGE, ["channel", "external_id"], returning=MESSAGE.c.id))
        self.existing = hot(select(MESSAGE.c.id, MESSAGE.c.ticket_id, MESSAGE.c.content_hash, MESSAGE.c.delivery_id, MESSAGE.c.source).where(
            MESSAGE.c.channel == p("channel"), MESSAGE.c.external_id == p("external_id")
        ))
        self.stored_content = select(MESSAGE.c.external_id, MESSAGE.c.content_hash).where(
            MESSAGE.c.channel == p("channel"), MESSAGE.c.external_id.in_(p("ids", expanding=True))
        )
        self.by_message_ids = select(MESSAGE.c.message_id, MESSAGE.c.ticket_id).where(
            MESSAGE.c.channel == p("channel"),
            MESSAGE.c.message_id.in_(p("ids", expanding=True)),
            MESSAGE.c.ticket_id.is_not(None),
        )
        self.by_thread_key = hot(
            select(MESSAGE.c.ticket_id)
            .where(MESSAGE.c.channel == p("channel"), MESSAGE.c.thread_key == p("thread_key"), MESSAGE.c.ticket_id.is_not(None))
            .order_by(MESSAGE.c.id)
            .limit(1)
        )
        self.ticket_exists = select(TICKET.c.id).where(TICKET.c.id == p("ticket_id"))
        self.ticket_status = hot(select(TICKET.c.status).where(TICKET.c.id == p("ticket_id")))
        self.participants = select(MESSAGE.c.sender_address, MESSAGE.c.recipients).where(MESSAGE.c.ticket_id == p("ticket_id"))
        self.org_insert = on_conflict(dialect, ORGANISATION, ["domain"], returning=ORGANISATION.c.id)
        # An organisation's first domain, or a further one staff added (`helpdesk org set D --add-domain`).
        self.org_id = select(ORGANISATION.c.id).where(ORGANISATION.c.domain == p("domain")).union_all(
            select(ORG_DOMAIN.c.organisation_id).where(ORG_DOMAIN.c.domain == p("domain"))
        ).limit(1)
        self.contact_for = hot(
            select(IDENTITY.c.contact_id, CONTACT.c.organisation_id)
            .join(CONTACT, CONTACT.c.id == IDENTITY.c.contact_id)
            .where(IDENTITY.c.channel == p("channel"), IDENTITY.c.address == p("address"))
        )
        self.contact_insert = insert(CONTACT).returning(CONTACT.c.id)
        self.contact_set_org = (
            update(CONTACT)
            .where(CONTACT.c.id == p("contact_pk"), CONTACT.c.organisation_id.is_(None))
            .values(organisation_id=p("org_pk"))
        )
        self.contact_delete = delete(CONTACT).where(CONTACT.c.id == p("contact_pk"))
        self.identity_insert = on_conflict(dialect, IDENTITY, ["channel", "address"], returning=IDENTITY.c.id)
        self.ticket_insert = hot(insert(TICKET).returning(TICKET.c.id))
        self.event_insert = hot(on_conflict(dialect, EVENT, ["key"]))
        self.outbox_insert = hot(on_conflict(dialect, OUTBOX, ["key"]))
        self.event_once = on_conflict(dialect, EVENT, ["key"], returning=EVENT.c.id)
        self.quarantine_insert = on_conflict(dialect, QUARANTINE, ["key"], returning=QUARANTINE.c.id)
        self.ticket_update = update(TICKET).where(TICKET.c.id == p("ticket_pk"))  # the columns set are those bound


class IntakeStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        dialect = engine.dialect.name
        if dialect not in {"sqlite", "postgresql"}:
            raise ValueError(f"unsupported database dialect {dialect!r}")
        self.statements = _Statements(engine.dialect)
        self.one_writer = one_writer(engine)
        self.known = _KnownIds()

    def stored_content(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str, str]]:
        """(channel, external id, content hash) of the messages among ``keys`` (channel, external id) stored before.

        Read outside any write transaction (on SQLite it does not wait for the writer), one query per channel."""
        found: set[tuple[str, str, str]] = set()
        by_channel: dict[str, list[str]] = {}
        for channel, external_id in keys:
            by_channel.setdefault(channel, []).append(external_id)
        with reading(self.engine) as c:
            for channel, ids in by_channel.items():
                rows = c.execute(self.statements.stored_content, {"channel": channel, "ids": ids})
                found.update((channel, row.external_id, row.content_hash) for row in rows)
        return found

    @contextlib.contextmanager
    def transaction(self) -> Iterator["IntakeTx"]:
        """One write transaction (BEGIN IMMEDIATE on SQLite); rolled back if the block raises."""
        with self.engine.begin() as connection:  # on SQLite, threads take turns on the engine's writer lock
            tx = IntakeTx(connection, self.statements, self.known)
            yield tx
            tx.flush()
        self.known.merge(tx.learned)  # only what was committed


class _KnownIds:
    """Ids of organisations and contacts known to be committed, so returning senders cost no lookups.

    Rows of these tables are never deleted (a contact that lost an insert race was
    never committed), so a committed id stays valid. Bounded: cleared when full.
    """

    LIMIT = 100_000

    def __init__(self) -> None:
        self.organisations: dict[str, int] = {}
        self.contacts: dict[tuple[str, str], tuple[int, int | None]] = {}
        self._lock = threading.Lock()

    def merge(self, learned: "_KnownIds") -> None:
        with self._lock:
            if len(self.contacts) + len(self.organisations) > self.LIMIT:
                self.organisations.clear()
                self.contacts.clear()
            self.organisations.update(learned.organisations)
            self.contacts.update(learned.contacts)

    def forget_contact(self, channel: str, address: str) -> None:
        """Call when an identity is moved to another contact (merging people)."""
        with self._lock:
            self.contacts.pop((channel, address), None)


class IntakeTx:
    """The pipeline's reads (dedupe, threading) and its decisions recorded, inside one transaction.

    The pipeline hands each decision whole (``storage.intake_records``): ``open_ticket``,
    ``record_reply``, ``record_automated``, ``record_duplicate``; the rows, metric events and
    outbox entries they mean are written here.
    """

    def __init__(self, connection: Connection, statements: _Statements, known: _KnownIds | None = None) -> None:
        self.c = connection
        self.s = statements
        self.known = known or _KnownIds()
        self.learned = _KnownIds()
        # Metric events and outbox rows, written together by ``flush`` (at the latest before the commit): one
        # statement for a batch's rows instead of two per message. Nothing in an intake transaction reads them back.
        self.events: list[dict[str, Any]] = []
        self.outbox: list[dict[str, Any]] = []

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """A part of the transaction that is undone alone if the block raises — with what it learned and the rows it left to write.

        Its rows are written before it ends, so that a row the database refuses fails this part alone."""
        self.flush()  # what came before is not this part's to undo
        organisations, contacts = dict(self.learned.organisations), dict(self.learned.contacts)
        nested = self.c.begin_nested()
        try:
            yield
            self.flush()
        except BaseException:
            nested.rollback()
            self.learned.organisations, self.learned.contacts = organisations, contacts
            self.events, self.outbox = [], []  # this part's rows: undone with it
            raise
        nested.commit()

    def flush(self) -> None:
        """Write the metric events and outbox rows recorded so far (those whose key was recorded before are left as they were)."""
        events, outbox = self.events, self.outbox
        self.events, self.outbox = [], []
        if events:
            self.s.event_insert.execute_many(self.c, events)
        if outbox:
            self.s.outbox_insert.execute_many(self.c, outbox)

    # -- decisions ----------------------------------------------------------------
    def open_ticket(self, enquiry: NewTicket, at: datetime) -> Opened:
        """The enquiry's organisation and contact, the ticket, its first message, the events and the assignment to do."""
        arrival, labels, route = enquiry.arrival, enquiry.labels, enquiry.route
        organisation_id = None
        if labels.organisation:
            organisation_id = self.upsert_organisation(labels.organisation, labels.organisation_name, labels.sector, at)
        contact_id = self.upsert_contact(arrival.channel, arrival.sender_address, arrival.sender_name, organisation_id, at,
                                         arrival.identities)
        ticket_id = self.s.ticket_insert.scalar(self.c, {
            "status": "new",
            "subject": arrival.subject,
            "channel": arrival.channel,
            "contact_id": contact_id,
            "organisation_id": organisation_id,
            "type": labels.type,
            "type_confidence": labels.type_confidence,
            "sector": labels.sector,
            "sector_confidence": labels.sector_confidence,
            "language": labels.language,
            "language_confidence": labels.language_confidence,
            "needs_triage": labels.needs_triage,
            "classification": labels.explained,
            "team": route.team,
            "assignee": None,
            "priority": route.priority,
            "routing_rule": route.rule,
            "routing": route.explained,
            "suggestions": enquiry.suggestions,
            "docs_gap": enquiry.docs_gap,
            "created_at": enquiry.opened_at,
            "updated_at": at,
        })
        message_pk = self.insert_message(arrival.message_row(
            ticket_id=ticket_id, kind="enquiry", thread=enquiry.thread, stored_at=at, contact_id=contact_id, language=labels.language
        ))
        created = {"type": labels.type, "sector": labels.sector, "language": labels.language, "team": route.team,
                   "priority": route.priority, "rule": route.rule, "needs_triage": labels.needs_triage,
                   "organisation": labels.organisation}
        events = [
            event_row(f"ticket_created:{ticket_id}", "ticket_created", ticket_id, enquiry.opened_at, created, arrival.channel),
            event_row(f"routed:{ticket_id}:1", "routed", ticket_id, at, route.explained, arrival.channel),
        ]
        if enquiry.docs_gap:
            events.append(event_row(f"docs_gap:{ticket_id}", "docs_gap", ticket_id, enquiry.opened_at,
                                    {"type": labels.type, "language": labels.language}, arrival.channel))
        self.add_events(events)
        assign_key = f"assign:{ticket_id}"
        self.add_outbox(assign_key, "assign", ticket_id, {}, at)
        return Opened(ticket_id, message_pk, assign_key)

    def record_reply(self, reply: Reply, at: datetime) -> int:
        """The reply's contact and message on its ticket, and the "threaded" event; returns the message's key."""
        arrival, ticket_id = reply.arrival, reply.thread.ticket_id
        contact_id = self.upsert_contact(arrival.channel, arrival.sender_address, arrival.sender_name, None, at, arrival.identities)
        message_pk = self.insert_message(arrival.message_row(
            ticket_id=ticket_id, kind="reply", thread=reply.thread, stored_at=at, contact_id=contact_id, language=reply.language
        ))
        self.add_events([event_row(f"threaded:{message_pk}", "threaded", ticket_id, at, {"rule": reply.thread.rule}, arrival.channel)])
        return message_pk

    def reopen_for_reply(self, ticket_id: int, message_pk: int, channel: str, at: datetime) -> None:
        """The enquirer wrote on a resolved ticket: open again, one more reopening counted (as staff's reopening is)."""
        self.update_ticket(ticket_id, {"status": "open", "resolved_at": None})
        self.count_reopening(ticket_id)
        self.add_events([event_row(f"reopened:{message_pk}", "reopened", ticket_id, at, {"by": "enquirer reply"}, channel)])

    def record_automated(self, mail: Automated, at: datetime) -> int:
        """A bounce or auto-reply: the message (no contact: its sender is a machine) and the "automated" event."""
        arrival = mail.arrival
        message_pk = self.insert_message(arrival.message_row(
            ticket_id=mail.thread.ticket_id, kind="automated", thread=mail.thread, stored_at=at,
            automated_kind=mail.kind, automated_reason=mail.reason
        ))
        self.add_events([event_row(f"automated:{message_pk}", "automated", mail.thread.ticket_id, at,
                                   {"kind": mail.kind, "reason": mail.reason}, arrival.channel)])
        return message_pk

    def record_duplicate(self, duplicate: Duplicate, at: datetime) -> bool:
        """Count one more copy; False if this copy was counted before (nothing is written)."""
        return self.add_event_once(event_row(duplicate.copy_key, "duplicate", duplicate.ticket_id, at,
                                             {"message": duplicate.message_pk}, duplicate.channel))

    # -- dedupe ----------------------------------------------------------------
    def find_message(self, channel: str, external_id: str) -> AlreadyStored | None:
        found = self.s.existing.first(self.c, {"channel": channel, "external_id": external_id})
        return None if found is None else AlreadyStored(found.id, found.ticket_id, found.content_hash, found.delivery_id, found.source)

    def insert_message(self, row: dict[str, Any]) -> int:
        """Insert the message row; raises LostRace if its key was stored meanwhile.

        The unique constraint decides: on PostgreSQL a concurrent insert of the
        same key waits for the other transaction and then does nothing.
        """
        inserted = self.s.claim.scalar(self.c, row)
        if inserted is None:
            raise LostRace(f"{row['channel']}:{row['external_id']}")
        return inserted

    # -- threading lookups -----------------------------------------------------
    def tickets_by_message_ids(self, channel: str, ids: Sequence[str]) -> dict[str, int]:
        if not ids:
            return {}
        rows = self.c.execute(self.s.by_message_ids, {"channel": channel, "ids": list(ids)[:200]})
        return {row.message_id: row.ticket_id for row in rows}

    def ticket_by_thread_key(self, channel: str, thread_key: str) -> int | None:
        return self.s.by_thread_key.scalar(self.c, {"channel": channel, "thread_key": thread_key})

    def ticket_exists(self, ticket_id: int) -> bool:
        return self.c.execute(self.s.ticket_exists, {"ticket_id": ticket_id}).scalar() is not None

    def ticket_participants(self, ticket_id: int) -> set[str]:
        """Addresses that wrote or were written to on the ticket."""
        found: set[str] = set()
        for row in self.c.execute(self.s.participants, {"ticket_id": ticket_id}):
            found.add(row.sender_address)
            found.update(r.get("address", "") for r in row.recipients or [])
        return {address for address in found if address}

    # -- contacts and organisations ---------------------------------------------
    def upsert_organisation(self, domain: str, name: str | None, sector: str | None, at: datetime) -> int:
        found = (self.known.organisations.get(domain) or self.learned.organisations.get(domain)  # learned: earlier in this transaction
                 or self.c.execute(self.s.org_id, {"domain": domain}).scalar())
        if found is None:
            found = self.c.execute(self.s.org_insert, {"domain": domain, "name": name, "sector": sector, "created_at": at}).scalar()
            if found is None:  # inserted concurrently by another transaction
                found = self.c.execute(self.s.org_id, {"domain": domain}).scalar_one()
        self.learned.organisations[domain] = found
        return found

    def upsert_contact(self, channel: str, address: str, display_name: str, organisation_id: int | None, at: datetime,
                       aliases: dict[str, str] | None = None) -> int:
        """The contact of (channel, address), created if new; a contact without an organisation gains ``organisation_id``.

        ``aliases`` are the same person's identities on other channels (a Slack user's profile e-mail):
        a new identity joins the contact that already has one of them, and the aliases are recorded.
        """
        key = (channel, address)
        known = self.known.contacts.get(key) or self.learned.contacts.get(key)  # learned: earlier in this transaction
        if known is None:
            found = self.s.contact_for.first(self.c, {"channel": channel, "address": address})
            known = (found.contact_id, found.organisation_id) if found is not None else None
        if known is None and aliases:
            for alias_channel, alias_address in aliases.items():
                found = self.s.contact_for.first(self.c, {"channel": alias_channel, "address": alias_address})
                if found is not None:
                    self.c.execute(self.s.identity_insert, {"contact_id": found.contact_id, "channel": channel, "address": address, "created_at": at})
                    known = (found.contact_id, found.organisation_id)
                    break
        if known is None:
            known = (self._create_contact(channel, address, display_name, organisation_id, at), organisation_id)
            for alias_channel, alias_address in (aliases or {}).items():
                self.c.execute(self.s.identity_insert, {"contact_id": known[0], "channel": alias_channel, "address": alias_address, "created_at": at})
        elif known[1] is None and organisation_id is not None:
            self.c.execute(self.s.contact_set_org, {"contact_pk": known[0], "org_pk": organisation_id})
            known = (known[0], organisation_id)
        self.learned.contacts[key] = known
        return known[0]

    def _create_contact(self, channel: str, address: str, display_name: str, organisation_id: int | None, at: datetime) -> int:
        contact_id = self.c.execute(
            self.s.contact_insert, {"display_name": display_name, "organisation_id": organisation_id, "created_at": at}
        ).scalar_one()
        won = self.c.execute(
            self.s.identity_insert, {"contact_id": contact_id, "channel": channel, "address": address, "created_at": at}
        ).scalar()
        if won is None:  # a concurrent transaction created this identity first: use its contact
            self.c.execute(self.s.contact_delete, {"contact_pk": contact_id})
            return self.s.contact_for.first(self.c, {"channel": channel, "address": address}).contact_id
        return contact_id

    # -- tickets and messages ---------------------------------------------------
    def ticket(self, ticket_id: int) -> Ticket | None:
        """The ticket as it is in this transaction (None if there is no such ticket)."""
        return tickets.get(self.c, ticket_id)

    def ticket_status(self, ticket_id: int) -> str | None:
        return self.s.ticket_status.scalar(self.c, {"ticket_id": ticket_id})

    def update_ticket(self, ticket_id: int, values: dict[str, Any]) -> None:
        self.c.execute(self.s.ticket_update, {"ticket_pk": ticket_id, **values})

    def count_reopening(self, ticket_id: int) -> None:
        """One more reopening of the ticket (the report's "reopened"), counted in the database."""
        self.c.execute(update(TICKET).where(TICKET.c.id == ticket_id).values(reopened_count=func.coalesce(TICKET.c.reopened_count, 0) + 1))

    # -- facts -------------------------------------------------------------------
    def add_events(self, events: Iterable[dict[str, Any]]) -> None:
        """Record metric events (written by ``flush``); those whose key was recorded before are left as they were."""
        self.events.extend(events)

    def add_event_once(self, event: dict[str, Any]) -> bool:
        """Record one metric event; False if an event with its key was recorded before (nothing is written)."""
        return self.c.execute(self.s.event_once, event).scalar() is not None

    def add_outbox(self, key: str, kind: str, ticket_id: int | None, payload: dict[str, Any], at: datetime) -> None:
        """Record a side effect to carry out after the commit (written by ``flush``; a key recorded before is left as it was)."""
        self.outbox.append(new_row(key, kind, ticket_id, payload, at))

    def quarantine(self, row: dict[str, Any]) -> bool:
        """Record a quarantine entry; False if its key was recorded before."""
        return self.c.execute(self.s.quarantine_insert, row).scalar() is not None


def count_rows(connection: Connection, table: Any, *where: Any) -> int:
    return connection.execute(select(func.count()).select_from(table).where(and_(True, *where))).scalar_one()
