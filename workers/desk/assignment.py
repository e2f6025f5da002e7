"""Fair assignment: who gets the next ticket of a team, and why. Pure: loads and "now" come in.

A member is *available* when not on leave and within their working hours
(their own time zone and days; the team calendar's public holidays apply);
*free* when their open tickets are below their capacity. Round-robin takes the
next available and free member after the last one assigned; least-loaded
takes the one with the smallest share of their capacity in use (ties in
round-robin order). Nobody available and free → the ticket waits in the
team's backlog.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime

from config.desk import Calendar, Member, Team
from workers.desk.business_hours import BusinessCalendar


@dataclass(frozen=True)
class Choice:
    member: str | None  # None: backlog
    reasons: tuple[str, ...]


def availability(member: Member, team: Team, at: datetime) -> str | None:
    """None when ``member`` can take work at ``at``; otherwise why not."""
    local = at.astimezone(_calendar(member, team).zone)
    if member.on_leave_until is not None and local.date() <= member.on_leave_until:
        return f"on leave until {member.on_leave_until.isoformat()}"
    if not _calendar(member, team).is_open(at):
        return f"off shift ({member.working_hours} {member.timezone}, now {local:%a %H:%M})"
    return None


def choose(team: Team, loads: dict[str, int], last: str | None, at: datetime) -> Choice:
    """The member of ``team`` to assign, given open-ticket ``loads`` and the ``last`` member assigned."""
    members = list(team.members)
    if not members:
        return Choice(None, ("the team has no members: backlog",))
    start = next((i + 1 for i, m in enumerate(members) if m.key == last), 0)
    ordered = members[start:] + members[:start]
    notes, candidates = [], []
    for member in ordered:
        why_not = availability(member, team, at)
        load = loads.get(member.key, 0)
        if why_not is not None:
            notes.append(f"{member.key} {why_not}")
        elif load >= member.capacity:
            notes.append(f"{member.key} full ({load}/{member.capacity})")
        else:
            candidates.append(member)
    if not candidates:
        return Choice(None, ("nobody available with capacity: backlog", *notes))
    if team.strategy == "round_robin":
        chosen = candidates[0]
        reason = f"round robin: {chosen.key} is next ({loads.get(chosen.key, 0)}/{chosen.capacity} open)"
    else:
        chosen = min(candidates, key=lambda m: (loads.get(m.key, 0) / max(m.capacity, 1), ordered.index(m)))
        others = ", ".join(f"{m.key} {loads.get(m.key, 0)}/{m.capacity}" for m in candidates if m is not chosen)
        reason = f"least loaded: {chosen.key} {loads.get(chosen.key, 0)}/{chosen.capacity}" + (f" (then {others})" if others else "")
    return Choice(chosen.key, (reason, *notes))


@functools.lru_cache(maxsize=512)
def _member_calendar(member: Member, holidays: Calendar) -> BusinessCalendar:
    return BusinessCalendar(
        Calendar(
            timezone=member.timezone,
            working_hours=member.working_hours,
            working_days=member.working_days,
            holidays=holidays.holidays,
            holiday_country=holidays.holiday_country,
        )
    )


def _calendar(member: Member, team: Team) -> BusinessCalendar:
    return _member_calendar(member, team.calendar)
