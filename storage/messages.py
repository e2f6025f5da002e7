"""Messages on tickets beyond intake's: staff replies and notes, their sending state, Slack edits and deletions.

Intake's own writes (one transaction per inbound message) are ``storage.intake_store``'s.
A message comes back as a ``Message`` (the table's model, detached from any session).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterator, Literal

from sqlalchemy import Engine, func, select, update

from storage import events, outbox
from storage.models import MESSAGE, TICKET, utcnow
from storage.upsert import insert_once

if TYPE_CHECKING:
    from storage.models import Message

StaffMessageStatus = Literal["recorded", "recorded_before", "unknown_ticket"]


@dataclass(frozen=True)
class StaffMessage:
    """What became of a staff reply or note.

    ``effect`` is the outbox key to enqueue (a reply to send), None for a note, a reply already
    delivered, or nothing recorded. Unpacks as ``(message_id, effect)``.
    """

    status: StaffMessageStatus
    message_id: int | None = None
    effect: str | None = None

    @property
    def recorded(self) -> bool:
        return self.status == "recorded"

    def __iter__(self) -> Iterator[Any]:
        return iter((self.message_id, self.effect))


def add_staff_message(
    engine: Engine, ticket_id: int, text: str, now: datetime, *, author: str, key: str, note: bool,
    sent_as: tuple[str, str] | None = None, kind: str = "reply", subject: str = "",
) -> StaffMessage:
    """Record a staff reply (queued for sending, with its outbox row) or an internal note, with its event. Idempotent by ``key``.

    ``sent_as`` = (channel, external id) when the reply was already delivered (a staff member answering
    directly in the enquirer's Slack thread): it is stored as sent, with nothing to send.
    """
    with engine.begin() as c:
        ticket = c.execute(select(TICKET.c.id, TICKET.c.channel).where(TICKET.c.id == ticket_id)).first()
        if ticket is None:
            return StaffMessage("unknown_ticket")
        channel, external_id = sent_as or (ticket.channel, f"out:{key}")
        row = {"ticket_id": ticket_id, "channel": channel, "external_id": external_id[:998], "direction": "out",
               "kind": "note" if note else kind, "author": author, "text": text, "content_hash": _hash(text), "subject": subject[:2000],
               "status": None if note else ("sent" if sent_as else "queued"), "received_at": now, "stored_at": now, "source": f"staff:{author}"}
        message_pk = insert_once(c, MESSAGE, row, ["channel", "external_id"], MESSAGE.c.id)
        if message_pk is None:
            return StaffMessage("recorded_before")
        events.record(c, f"{'note' if note else kind}:{message_pk}", "note_added" if note else f"{kind}_queued", ticket_id, now, {"by": author})
        if note or sent_as:
            return StaffMessage("recorded", message_pk)
        effect = f"reply:{message_pk}"
        outbox.add(c, effect, "send_reply", ticket_id, {"message": message_pk}, now)
        return StaffMessage("recorded", message_pk, effect)


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def get(engine: Engine, message_id: int) -> Message | None:
    with engine.connect() as c:
        row = c.execute(select(MESSAGE).where(MESSAGE.c.id == message_id)).first()
    from storage.models import Message  # noqa: PLC0415 - the model class is built on first use (storage/models.py)

    return Message(**row._mapping) if row is not None else None


def change(engine: Engine, message_pk: int, values: dict[str, Any]) -> None:
    """Set ``values`` on the message ``message_pk`` (its sending state, what an outbound mail was sent as)."""
    with engine.begin() as c:
        c.execute(update(MESSAGE).where(MESSAGE.c.id == message_pk).values(**values))


# -- Slack: the author changed or took back their words ------------------------------------------------
@dataclass(frozen=True)
class Revision:
    """A stored message the author edited or deleted."""

    message_id: int
    ticket_id: int | None


def record_edit(engine: Engine, channel: str, external_id: str, text: str, at: datetime, *, key: str) -> Revision | None:
    """Keep only what the author says now (no copy of the text before); None when the message is not stored."""
    with engine.begin() as c:
        row = c.execute(select(MESSAGE.c.id, MESSAGE.c.text, MESSAGE.c.ticket_id).where(
            MESSAGE.c.channel == channel, MESSAGE.c.external_id == external_id)).first()
        if row is None:
            return None
        c.execute(update(MESSAGE).where(MESSAGE.c.id == row.id).values(text=text, edited_at=at))
        events.record(c, key, "message_edited", row.ticket_id, at, {"message": row.id, "chars_before": len(row.text), "chars_after": len(text)})
    return Revision(row.id, row.ticket_id)


def record_deletion(engine: Engine, channel: str, external_id: str, at: datetime, *, key: str) -> Revision | None:
    """Its words go; the message stays as a counted, empty fact of the ticket. None when the message is not stored."""
    with engine.begin() as c:
        row = c.execute(select(MESSAGE.c.id, MESSAGE.c.ticket_id).where(
            MESSAGE.c.channel == channel, MESSAGE.c.external_id == external_id)).first()
        if row is None:
            return None
        c.execute(update(MESSAGE).where(MESSAGE.c.id == row.id).values(deleted_at=at, text="", new_text=None, html=None))
        events.record(c, key, "message_deleted", row.ticket_id, at, {"message": row.id})
    return Revision(row.id, row.ticket_id)


# -- threads -------------------------------------------------------------------------------------------
def ticket_of_thread(engine: Engine, channel: str, thread_key: str) -> int | None:
    """The ticket of the first stored message of the thread ``thread_key`` on ``channel``."""
    with engine.connect() as c:
        return c.execute(select(MESSAGE.c.ticket_id).where(
            MESSAGE.c.channel == channel, MESSAGE.c.thread_key == thread_key, MESSAGE.c.ticket_id.is_not(None)
        ).limit(1)).scalar()


def first_thread_key(engine: Engine, ticket_id: int) -> str | None:
    """The thread of the enquirer's first message on the ticket that has one (a Slack thread: ``channel:ts``)."""
    with engine.connect() as c:
        return c.execute(select(MESSAGE.c.thread_key).where(MESSAGE.c.ticket_id == ticket_id, MESSAGE.c.direction == "in",
                                                            MESSAGE.c.thread_key.is_not(None)).order_by(MESSAGE.c.id).limit(1)).scalar()


@dataclass(frozen=True)
class MailOrigin:
    """The enquirer's latest mail on a ticket: what a reply answers."""

    sender_address: str
    sender_name: str | None
    subject: str | None
    message_id: str | None
    refs: list[Any] | None


def latest_from_enquirer(engine: Engine, ticket_id: int, channels: Sequence[str]) -> MailOrigin | None:
    """The enquirer's latest message on the ticket on one of ``channels``, automated mail left aside."""
    with engine.connect() as c:
        row = c.execute(select(MESSAGE.c.sender_address, MESSAGE.c.sender_name, MESSAGE.c.subject, MESSAGE.c.message_id, MESSAGE.c.refs)
                        .where(MESSAGE.c.ticket_id == ticket_id, MESSAGE.c.direction == "in", MESSAGE.c.channel.in_(list(channels)),
                               MESSAGE.c.kind != "automated")
                        .order_by(MESSAGE.c.id.desc()).limit(1)).first()
    return MailOrigin(row.sender_address, row.sender_name, row.subject, row.message_id, row.refs) if row is not None else None


# -- replies held or failed -------------------------------------------------------------------------------
def requeue_held_replies(engine: Engine) -> list[str]:
    """Outbox keys of replies still queued (held while their channel could not send), their outbox rows made pending again."""
    keys = []
    with engine.begin() as c:
        rows = c.execute(select(MESSAGE.c.id).where(MESSAGE.c.direction == "out", MESSAGE.c.status == "queued")).all()
        for row in rows:
            key = f"reply:{row.id}"
            outbox.make_pending(c, key, utcnow(), only_finished=True)
            keys.append(key)
    return keys


def requeue_failed_reply(engine: Engine, message_id: int) -> str | None:
    """A failed reply queued once more, with its outbox row pending; its outbox key, or None if it is no failed reply."""
    key = f"reply:{message_id}"
    with engine.begin() as c:
        changed = c.execute(update(MESSAGE).where(MESSAGE.c.id == message_id, MESSAGE.c.direction == "out", MESSAGE.c.status == "failed")
                            .values(status="queued", error=None)).rowcount
        if not changed:
            return None
        outbox.make_pending(c, key, utcnow())
    return key


# -- re-processing ---------------------------------------------------------------------------------------------
def openings(engine: Engine, ticket_ids: Sequence[int] | None, since: datetime | None, until: datetime | None) -> list[Any]:
    """Each ticket's opening message (every column) with the ticket's labels as ``t_type``, ``t_sector``, ``t_language``,
    ``t_classification``; by ticket number, of the tickets given or opened in [since, until)."""
    first = select(MESSAGE.c.ticket_id, func.min(MESSAGE.c.id).label("id")).where(MESSAGE.c.kind == "enquiry").group_by(MESSAGE.c.ticket_id).subquery()
    stmt = (
        select(MESSAGE, TICKET.c.type.label("t_type"), TICKET.c.sector.label("t_sector"), TICKET.c.language.label("t_language"),
               TICKET.c.classification.label("t_classification"))
        .join(first, first.c.id == MESSAGE.c.id)
        .join(TICKET, TICKET.c.id == MESSAGE.c.ticket_id)
        .order_by(TICKET.c.id)
    )
    if ticket_ids:
        stmt = stmt.where(TICKET.c.id.in_(list(ticket_ids)))
    if since is not None:
        stmt = stmt.where(TICKET.c.created_at >= since)
    if until is not None:
        stmt = stmt.where(TICKET.c.created_at < until)
    with engine.connect() as connection:
        return list(connection.execute(stmt))
