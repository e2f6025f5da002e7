"""Metric events: append-only facts of management information, each counted once by its ``key``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from storage.driver import hot
from storage.models import EVENT
from storage.upsert import do_nothing


def event_row(key: str, kind: str, ticket_id: int | None, at: datetime, data: dict[str, Any] | None,
              channel: str | None = None) -> dict[str, Any]:
    """The row of one metric event (its key cut to the column's 255 characters)."""
    return {"key": key[:255], "kind": kind, "ticket_id": ticket_id, "channel": channel, "at": at, "data": data}


def record(c: Connection, key: str, kind: str, ticket_id: int | None, at: datetime, data: dict[str, Any] | None,
           channel: str | None = None) -> bool:
    """Record one event in the caller's transaction; False if an event with its key was recorded before (nothing written)."""
    row = event_row(key, kind, ticket_id, at, data, channel)
    return hot(c, do_nothing(c.dialect.name, EVENT, ("key",), EVENT.c.id)).scalar(c, row) is not None


def record_many(c: Connection, rows: Iterable[dict[str, Any]]) -> None:
    """Record events built by ``event_row``; those whose key was recorded before are left as they were."""
    rows = list(rows)
    if rows:
        c.execute(do_nothing(c.dialect.name, EVENT, ("key",)), rows)


def count(engine: Engine, kind: str) -> int:
    """How many events of ``kind`` were ever recorded."""
    with engine.connect() as c:
        return c.execute(select(func.count()).select_from(EVENT).where(EVENT.c.kind == kind)).scalar_one()


def tickets_with(engine: Engine, kind: str, since: datetime) -> set[int]:
    """Tickets with an event of ``kind`` at or after ``since`` (``ticket_created``: the tickets opened since)."""
    with engine.connect() as c:
        rows = c.execute(select(EVENT.c.ticket_id).where(EVENT.c.kind == kind, EVENT.c.at >= since))
        return {r.ticket_id for r in rows}
