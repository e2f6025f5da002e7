"""The acknowledgement log: where each acknowledgement went, so hourly limits per address, domain and desk hold."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from storage.models import ACKNOWLEDGEMENT as ACK
from storage.models import EVENT, MESSAGE, TICKET
from storage.upsert import insert_once


@dataclass(frozen=True)
class RecentAcknowledgements:
    to_address: int
    to_domain: int
    in_total: int


def recent(c: Connection, address: str, domain: str | None, since: datetime) -> RecentAcknowledgements:
    """How many acknowledgements went to this address, to this domain, and anywhere since ``since``."""
    def count(*where: Any) -> int:
        return int(c.execute(select(func.count()).select_from(ACK).where(ACK.c.at >= since, *where)).scalar_one())

    return RecentAcknowledgements(count(ACK.c.address == address), count(ACK.c.domain == domain) if domain else 0, count())


def record(c: Connection, ticket_id: int, address: str, domain: str | None, at: datetime) -> bool:
    """Note an acknowledgement in the caller's transaction; False if this ticket's was noted before."""
    values = {"ticket_id": ticket_id, "address": address[:512], "domain": domain or None, "at": at}
    return insert_once(c, ACK, values, ["ticket_id"], ACK.c.ticket_id) is not None


def opening_message(c: Connection, ticket_id: int) -> Any:
    """The enquirer's first message on the ticket: its address and the headers the policy reads."""
    return c.execute(select(MESSAGE.c.sender_address, MESSAGE.c.signals).where(
        MESSAGE.c.ticket_id == ticket_id, MESSAGE.c.direction == "in").order_by(MESSAGE.c.id).limit(1)).first()


def recent_for_contact(c: Connection, contact_id: int, other_than: int, since: datetime) -> int | None:
    """A ticket of the contact (not ``other_than``) acknowledged after ``since``, if any."""
    return c.execute(select(EVENT.c.ticket_id).select_from(EVENT.join(TICKET, TICKET.c.id == EVENT.c.ticket_id)).where(
        EVENT.c.kind == "acknowledged", TICKET.c.contact_id == contact_id, TICKET.c.id != other_than,
        EVENT.c.at > since).limit(1)).scalar()
