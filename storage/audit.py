"""The audit log: refused staff actions, and exports and erasures of people's data — who, when, what."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from storage.models import AUDIT, utcnow
from storage.upsert import on_conflict


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str
    surface: str
    action: str
    target: str
    outcome: str
    detail: dict[str, Any]


def record(engine: Engine, key: str, *, actor: str, surface: str, action: str, target: str = "", outcome: str,
           detail: dict[str, Any] | None = None, at: datetime | None = None) -> bool:
    """Append an entry; False when ``key`` was recorded before (a retried delivery of the same attempt)."""
    with engine.begin() as c:
        inserted = c.execute(
            on_conflict(c, AUDIT, ["key"], returning=AUDIT.c.id).values(
                key=key[:255], at=at or utcnow(), actor=actor[:128], surface=surface[:20], action=action[:40], target=target[:255],
                outcome=outcome[:20], detail=detail or {})
        ).scalar()
    return inserted is not None


def entries(engine: Engine, *, outcome: str | None = None, action: str | None = None, limit: int = 200) -> list[AuditEntry]:
    with engine.connect() as c:
        conditions = [column == value for column, value in ((AUDIT.c.outcome, outcome), (AUDIT.c.action, action)) if value is not None]
        rows = c.execute(select(AUDIT).where(*conditions).order_by(AUDIT.c.at.desc(), AUDIT.c.id.desc()).limit(limit))
        return [AuditEntry(r.at, r.actor, r.surface, r.action, r.target, r.outcome, r.detail or {}) for r in rows]
