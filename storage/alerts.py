"""Operator alerts (``alert_state``): one open alert per problem key until the problem clears."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, select, update

from storage.models import ALERT
from storage.upsert import on_conflict


@dataclass(frozen=True)
class Alert:
    key: str
    condition: str
    subject: str
    detail: str
    since: datetime


def open_alerts(engine: Engine) -> dict[str, Alert]:
    with engine.connect() as c:
        rows = c.execute(select(ALERT).where(ALERT.c.status == "open"))
        return {r.key: Alert(r.key, r.condition, r.subject, r.detail, r.since) for r in rows}


def open_alert(c: Connection, key: str, *, condition: str, subject: str, detail: str, at: datetime) -> None:
    """Open (or open again) the alert ``key`` in the caller's transaction."""
    c.execute(on_conflict(c, ALERT, ["key"], update={"status": "open", "since": at, "detail": detail, "updated_at": at})
              .values(key=key, condition=condition, subject=subject, status="open", since=at, detail=detail, updated_at=at))


def close_alert(c: Connection, key: str, at: datetime) -> None:
    c.execute(update(ALERT).where(ALERT.c.key == key, ALERT.c.status == "open").values(status="closed", updated_at=at))
