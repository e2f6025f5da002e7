"""Each team's round-robin pointer (``team_state``): whom the last assignment went to.

Assignment locks the team's row for the length of its transaction, so two
workers assigning at once cannot both hand out a member's last free slot.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select, update

from storage.models import TEAM_STATE
from storage.upsert import on_conflict


def lock(c: Connection, team: str, at: datetime) -> str | None:
    """Lock the team's row for the caller's transaction (created on first use); returns the last assignee."""
    c.execute(on_conflict(c, TEAM_STATE, ["team"]).values(team=team, last_assignee=None, updated_at=at))
    stmt = select(TEAM_STATE.c.last_assignee).where(TEAM_STATE.c.team == team)
    if c.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return c.execute(stmt).scalar()


def set_last_assignee(c: Connection, team: str, member: str, at: datetime) -> None:
    c.execute(update(TEAM_STATE).where(TEAM_STATE.c.team == team).values(last_assignee=member, updated_at=at))
