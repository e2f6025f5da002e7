"""Quarantine: dead letters mirrored from Redis and rejected input, kept with their reason until replayed or purged."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, or_, select, update

from storage.models import QUARANTINE
from storage.upsert import insert_once


def mirror_dead_letter(engine: Engine, *, message_id: str, queue: str, reason: str, detail: str, payload: dict[str, Any],
                       received_at: datetime, at: datetime) -> bool:
    """Keep a dead letter (key ``dead_letter:<message id>``); False if it was kept before."""
    values = {"key": f"dead_letter:{message_id}", "kind": "dead_letter", "status": "open", "queue": queue, "message_id": message_id,
              "channel": None, "reason": reason, "detail": detail, "source": "", "payload": payload, "received_at": received_at,
              "created_at": at}
    with engine.begin() as c:
        return insert_once(c, QUARANTINE, values, ["key"], QUARANTINE.c.id) is not None


def find(engine: Engine, ident: str) -> Any | None:
    """The quarantine row with this database id or dramatiq message id."""
    with engine.connect() as c:
        condition = QUARANTINE.c.message_id == ident
        if ident.isdigit():
            condition = or_(condition, QUARANTINE.c.id == int(ident))
        return c.execute(select(QUARANTINE).where(condition)).first()


def purge_dead_letters(engine: Engine) -> int:
    """Open dead letters marked purged, their payloads (the messages people sent) dropped; how many."""
    with engine.begin() as c:
        return c.execute(update(QUARANTINE).where(QUARANTINE.c.kind == "dead_letter", QUARANTINE.c.status == "open")
                         .values(status="purged", payload=None)).rowcount


def mark(engine: Engine, row_id: int, status: str, at: datetime) -> None:
    """A row replayed (``status``) at ``at``."""
    with engine.begin() as c:
        c.execute(update(QUARANTINE).where(QUARANTINE.c.id == row_id).values(status=status, replayed_at=at))
