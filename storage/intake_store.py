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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from storage.models import Contact, ContactIdentity, Message, MetricEvent, Organisation, Quarantine, Ticket

MESSAGE = Message.__table__
TICKET = Ticket.__table__
CONTACT = Contact.__table__
IDENTITY = ContactIdentity.__table__
ORGANISATION = Organisation.__table__
EVENT = MetricEvent.__table__
QUARANTINE = Quarantine.__table__


@dataclass(frozen=True)
class Claimed:
    """The message row was inserted: this delivery owns it."""

    message_pk: int


@dataclass(frozen=True)
class AlreadyStored:
    """A row with this (channel, external_id) exists already."""

    message_pk: int
    ticket_id: int | None
    content_hash: str
    delivery_id: str | None


class IntakeStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        dialect = engine.dialect.name
        if dialect not in {"sqlite", "postgresql"}:
            raise ValueError(f"unsupported database dialect {dialect!r}")
        self._insert = sqlite.insert if dialect == "sqlite" else postgresql.insert

    @contextlib.contextmanager
    def transaction(self) -> Iterator["IntakeTx"]:
        """One write transaction (BEGIN IMMEDIATE on SQLite); rolled back if the block raises."""
        with self.engine.begin() as connection:
            yield IntakeTx(connection, self._insert)


class IntakeTx:
    """The statements the pipeline needs, inside one transaction."""

    def __init__(self, connection: Connection, insert_factory: Any) -> None:
        self.c = connection
        self._insert = insert_factory

    # -- dedupe ----------------------------------------------------------------
    def claim_message(self, row: dict[str, Any]) -> Claimed | AlreadyStored:
        stmt = (
            self._insert(MESSAGE)
            .values(**row)
            .on_conflict_do_nothing(index_elements=["channel", "external_id"])
            .returning(MESSAGE.c.id)
        )
        inserted = self.c.execute(stmt).scalar()
        if inserted is not None:
            return Claimed(inserted)
        existing = self.c.execute(
            select(MESSAGE.c.id, MESSAGE.c.ticket_id, MESSAGE.c.content_hash, MESSAGE.c.delivery_id).where(
                MESSAGE.c.channel == row["channel"], MESSAGE.c.external_id == row["external_id"]
            )
        ).one()
        return AlreadyStored(existing.id, existing.ticket_id, existing.content_hash, existing.delivery_id)

    # -- threading lookups -----------------------------------------------------
    def tickets_by_message_ids(self, channel: str, ids: Sequence[str]) -> dict[str, int]:
        if not ids:
            return {}
        rows = self.c.execute(
            select(MESSAGE.c.message_id, MESSAGE.c.ticket_id).where(
                MESSAGE.c.channel == channel, MESSAGE.c.message_id.in_(list(ids)[:200]), MESSAGE.c.ticket_id.is_not(None)
            )
        )
        return {row.message_id: row.ticket_id for row in rows}

    def ticket_by_thread_key(self, channel: str, thread_key: str) -> int | None:
        return self.c.execute(
            select(MESSAGE.c.ticket_id)
            .where(MESSAGE.c.channel == channel, MESSAGE.c.thread_key == thread_key, MESSAGE.c.ticket_id.is_not(None))
            .order_by(MESSAGE.c.id)
            .limit(1)
        ).scalar()

    def ticket_exists(self, ticket_id: int) -> bool:
        return self.c.execute(select(TICKET.c.id).where(TICKET.c.id == ticket_id)).scalar() is not None

    def ticket_participants(self, ticket_id: int) -> set[str]:
        """Addresses that wrote or were written to on the ticket."""
        found: set[str] = set()
        rows = self.c.execute(
            select(MESSAGE.c.sender_address, MESSAGE.c.recipients).where(MESSAGE.c.ticket_id == ticket_id)
        )
        for row in rows:
            found.add(row.sender_address)
            found.update(r.get("address", "") for r in row.recipients or [])
        return {address for address in found if address}

    # -- contacts and organisations ---------------------------------------------
    def upsert_organisation(self, domain: str, name: str | None, sector: str | None, at: datetime) -> int:
        self.c.execute(
            self._insert(ORGANISATION)
            .values(domain=domain, name=name, sector=sector, created_at=at)
            .on_conflict_do_nothing(index_elements=["domain"])
        )
        return self.c.execute(select(ORGANISATION.c.id).where(ORGANISATION.c.domain == domain)).scalar_one()

    def upsert_contact(self, channel: str, address: str, display_name: str, organisation_id: int | None, at: datetime) -> int:
        found = self._contact_for(channel, address)
        if found is not None:
            if organisation_id is not None:  # a contact first seen without an organisation gains it now
                self.c.execute(
                    update(CONTACT)
                    .where(CONTACT.c.id == found, CONTACT.c.organisation_id.is_(None))
                    .values(organisation_id=organisation_id)
                )
            return found
        contact_id = self.c.execute(
            insert(CONTACT).values(display_name=display_name, organisation_id=organisation_id, created_at=at).returning(CONTACT.c.id)
        ).scalar_one()
        won = self.c.execute(
            self._insert(IDENTITY)
            .values(contact_id=contact_id, channel=channel, address=address, created_at=at)
            .on_conflict_do_nothing(index_elements=["channel", "address"])
            .returning(IDENTITY.c.id)
        ).scalar()
        if won is None:  # a concurrent transaction created this identity first: use its contact
            self.c.execute(delete(CONTACT).where(CONTACT.c.id == contact_id))
            return self._contact_for(channel, address)  # type: ignore[return-value]
        return contact_id

    def _contact_for(self, channel: str, address: str) -> int | None:
        return self.c.execute(
            select(IDENTITY.c.contact_id).where(IDENTITY.c.channel == channel, IDENTITY.c.address == address)
        ).scalar()

    # -- tickets and messages ---------------------------------------------------
    def create_ticket(self, values: dict[str, Any]) -> int:
        return self.c.execute(insert(TICKET).values(**values).returning(TICKET.c.id)).scalar_one()

    def attach_message(self, message_pk: int, values: dict[str, Any]) -> None:
        self.c.execute(update(MESSAGE).where(MESSAGE.c.id == message_pk).values(**values))

    def ticket_status(self, ticket_id: int) -> str | None:
        return self.c.execute(select(TICKET.c.status).where(TICKET.c.id == ticket_id)).scalar()

    def update_ticket(self, ticket_id: int, values: dict[str, Any]) -> None:
        self.c.execute(update(TICKET).where(TICKET.c.id == ticket_id).values(**values))

    # -- facts -------------------------------------------------------------------
    def add_events(self, events: Iterable[dict[str, Any]]) -> None:
        rows = list(events)
        if rows:
            self.c.execute(self._insert(EVENT).values(rows).on_conflict_do_nothing(index_elements=["key"]))

    def quarantine(self, row: dict[str, Any]) -> bool:
        """Record a quarantine entry; False if its key was recorded before."""
        inserted = self.c.execute(
            self._insert(QUARANTINE).values(**row).on_conflict_do_nothing(index_elements=["key"]).returning(QUARANTINE.c.id)
        ).scalar()
        return inserted is not None


def count_rows(connection: Connection, table: Any, *where: Any) -> int:
    return connection.execute(select(func.count()).select_from(table).where(and_(True, *where))).scalar_one()
