"""Each team's round-robin pointer (``team_state``): whom the last assignment went to.

Assignment locks the team's row for the length of its transaction, so two
workers assigning at once cannot both hand out a member's last free slot.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, bindparam, select, update

from storage.driver import hot
from storage.models import TEAM_STATE
from storage.upsert import do_nothing


_LAST = select(TEAM_STATE.c.last_assignee).where(TEAM_STATE.c.team == bindparam("team_key"))
_LAST_LOCKED = _LAST.with_for_update()
_SET_LAST = update(TEAM_STATE).where(TEAM_STATE.c.team == bindparam("team_key")).values(
    last_assignee=bindparam("member"), updated_at=bindparam("at"))


def lock(c: Connection, team: str, at: datetime) -> str | None:
    """Lock the team's row for the caller's transaction (created on first use); returns the last assignee.

    The row is read (and locked) first and written only when missing: a statement fewer for every assignment but a
    team's first, and one fewer while others wait for the lock."""
    read = _LAST_LOCKED if c.dialect.name == "postgresql" else _LAST
    row = hot(c, read).first(c, {"team_key": team})
    if row is None:  # another worker may be creating it too: its insert wins, ours does nothing, both then lock it
        c.execute(do_nothing(c.dialect.name, TEAM_STATE, ("team",)), {"team": team, "last_assignee": None, "updated_at": at})
        row = c.execute(read, {"team_key": team}).one()
    return row[0]


def set_last_assignee(c: Connection, team: str, member: str, at: datetime) -> None:
    hot(c, _SET_LAST).run(c, {"team_key": team, "member": member, "at": at})
