"""What the X reply sender (``workers.outbound.x_sender``) reads and writes: whom a reply answers on X, and what went out.

A message row's ``message_id`` on the X channel is ``tweet:<id>`` or ``dm:<event id>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select, update

from storage.models import MESSAGE


@dataclass(frozen=True)
class Enquirer:
    """Whom a reply answers: the ticket's enquirer on X, their latest tweet and DM conversation on the ticket."""

    user_id: str
    latest_tweet: str | None  # tweet id
    conversation_key: str | None  # thread key of that tweet's X conversation
    latest_is_dm: bool


def enquirer_of(engine: Engine, ticket_id: int) -> Enquirer | None:
    """The person who opened the ticket on X (others may have joined a public conversation); None without one."""
    with engine.connect() as c:
        rows = c.execute(select(MESSAGE.c.sender_address, MESSAGE.c.message_id, MESSAGE.c.thread_key)
                         .where(MESSAGE.c.ticket_id == ticket_id, MESSAGE.c.direction == "in", MESSAGE.c.channel == "x")
                         .order_by(MESSAGE.c.id)).all()
    if not rows or not rows[0].sender_address:
        return None
    user = rows[0].sender_address
    theirs = [r for r in rows if r.sender_address == user]
    tweets = [r for r in theirs if (r.message_id or "").startswith("tweet:")]
    latest = tweets[-1] if tweets else None
    return Enquirer(user, latest.message_id.split(":", 1)[1] if latest else None, latest.thread_key if latest else None,
                    (theirs[-1].message_id or "").startswith("dm:"))


def record_sent(engine: Engine, message_id: int, ids: list[str], thread_key: str | None, *, sender: str, to: str) -> None:
    """What went out for the reply ``message_id``, on its row: the X ids sent (``tweet:…``/``dm:…``, the last one newest),
    and the X thread they continue, so the enquirer's answer threads back onto the ticket."""
    values: dict[str, Any] = {"message_id": ids[-1], "refs": ids, "sender_address": sender,
                              "recipients": [{"address": to, "name": "", "role": "to"}]}
    if thread_key:
        values["thread_key"] = thread_key
    with engine.begin() as c:
        c.execute(update(MESSAGE).where(MESSAGE.c.id == message_id).values(**values))
