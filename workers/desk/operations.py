"""The desk's operations on tickets: assign, set SLA clocks, change status — each one transaction, keyed, explained.

Assignment locks the team's row (``team_state``) for the length of the
transaction, so two workers assigning at once cannot both hand out a member's
last free slot. Every change writes a metric event whose key makes it count once.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from config.desk import DeskConfig, Team
from storage import events, outbox, teams, tickets
from storage.events import event_row
from storage.intake_store import IntakeTx
from storage.messages import StaffMessage
from storage.messages import add_staff_message as _add_staff_message
from workers.desk.assignment import availability, choose
from workers.desk.business_hours import BusinessCalendar
from workers.desk.sla import due_times, policy_for, resume

OPEN_STATUSES = tickets.OPEN_STATUSES


@dataclass(frozen=True)
class AssignResult:
    outcome: str  # assigned | backlog | already | closed | unknown
    ticket_id: int
    member: str | None = None
    reasons: tuple[str, ...] = ()
    effects: tuple[str, ...] = ()  # outbox keys to enqueue once committed


class Desk:
    """Desk configuration plus the calendars built from it; shared by workers and the scheduler."""

    def __init__(self, config: DeskConfig, ticket_prefix: str = "HD") -> None:
        self.config = config
        self.prefix = ticket_prefix

    def team(self, key: str) -> Team | None:
        return self.config.teams.teams.get(key)

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one Desk per process; calendars are immutable
    def calendar(self, team_key: str) -> BusinessCalendar:
        team = self.team(team_key)
        return BusinessCalendar(team.calendar if team is not None else self.config.teams.teams[self.default_team].calendar)

    @property
    def default_team(self) -> str:
        return self.config.routing.default.team

    def member_name(self, key: str | None) -> str:
        for team in self.config.teams.teams.values():
            for member in team.members:
                if member.key == key:
                    return member.name
        return key or "—"

    def slack_user(self, key: str | None) -> str | None:
        for team in self.config.teams.teams.values():
            for member in team.members:
                if member.key == key and member.slack_user:
                    return member.slack_user
        return None


def assign(
    engine: Engine, desk: Desk, ticket_id: int, now: datetime, *, force: bool = False, exclude: str | None = None, because: str | None = None
) -> AssignResult:
    """Assign ``ticket_id`` within its team (or leave it in the backlog, saying why); set its SLA clock once.

    Idempotent: a ticket already assigned stays with its assignee unless ``force`` (reassignment).
    """
    with engine.begin() as c:
        return assign_in(c, desk, ticket_id, now, force=force, exclude=exclude, because=because)


def assign_in(
    c: Connection, desk: Desk, ticket_id: int, now: datetime, *, force: bool = False, exclude: str | None = None,
    because: str | None = None, ticket: Any = None,
) -> AssignResult:
    """``assign`` in the caller's transaction; ``ticket``: the ticket's row if the caller has read it, locked, already."""
    ticket = ticket if ticket is not None else tickets.get(c, ticket_id, lock=True)
    if ticket is None:
        return AssignResult("unknown", ticket_id)
    if ticket.status == "resolved":
        return AssignResult("closed", ticket_id)
    team = desk.team(ticket.team)
    if team is None:
        return AssignResult("backlog", ticket_id, None, (f"team {ticket.team!r} is not configured",))
    changes: dict[str, Any] = _sla_changes(ticket, desk, now)
    if ticket.assignee and not force:
        tickets.change(c, ticket_id, changes)
        return AssignResult("already", ticket_id, ticket.assignee)
    # The team's row stays locked from here to the commit, and every assignment to the team waits for it: what needs
    # no lock (the SLA's due times, a ticket already assigned) is done before it.
    last = teams.lock(c, ticket.team, now)
    member_keys = [m.key for m in team.members if m.key != exclude]
    counts = tickets.open_loads(c, member_keys)
    candidates = team.model_copy(update={"members": tuple(m for m in team.members if m.key != exclude)})
    choice = choose(candidates, counts, last, now)
    reasons = [*([because] if because else []), *choice.reasons]
    note = {"member": choice.member, "reasons": reasons, "at": now.isoformat(), "team": ticket.team}
    changes.update(assignment=note, updated_at=now)
    if choice.member is None:
        tickets.change(c, ticket_id, changes)
        events.record(c, f"backlog:{ticket_id}:{ticket.assignment_count}", "backlogged", ticket_id, now, note)
        return AssignResult("backlog", ticket_id, None, tuple(reasons))
    number = ticket.assignment_count + 1
    changes.update(assignee=choice.member, assigned_at=now, assignment_count=number,
                   status="open" if ticket.status == "new" else ticket.status)
    tickets.change(c, ticket_id, changes)
    teams.set_last_assignee(c, ticket.team, choice.member, now)
    kind = "reassigned" if ticket.assignee else "assigned"
    events.record(c, f"{kind}:{ticket_id}:{number}", kind, ticket_id, now,
                  {**note, "from": ticket.assignee} if ticket.assignee else note)
    card_key = f"card:{ticket_id}:{number}"
    outbox.add(c, card_key, "slack_card", ticket_id, {"assignment": number}, now)
    return AssignResult("assigned", ticket_id, choice.member, tuple(reasons), (card_key,))


def _sla_changes(ticket: Any, desk: Desk, now: datetime) -> dict[str, Any]:
    if ticket.sla_policy is not None:
        return {}
    policy = policy_for(desk.config.sla, ticket.priority, ticket.type)
    if policy is None:
        return {"sla_policy": "none"}
    due = due_times(policy, ticket.created_at, desk.calendar(ticket.team))
    return {"sla_policy": due.policy, "first_response_due_at": due.first_response, "resolution_due_at": due.resolution}


def set_status(engine: Engine, desk: Desk, ticket_id: int, status: str, now: datetime, *, by: str, key: str) -> bool:
    """Move a ticket to ``status``; pending pauses the SLA clock, leaving pending resumes it. False if nothing changed."""
    with engine.begin() as c:
        ticket = tickets.get(c, ticket_id, lock=True)
        if ticket is None or ticket.status == status:
            return False
        if not events.record(c, key, "status_changed", ticket_id, now, {"from": ticket.status, "to": status, "by": by}):
            return False  # this very change was recorded before
        values: dict[str, Any] = {"status": status, "updated_at": now}
        calendar = desk.calendar(ticket.team)
        paused = ticket.paused_business_seconds or 0.0
        if status == "pending":
            values["sla_paused_at"] = now
        elif ticket.sla_paused_at is not None:
            values.update(_resumed(ticket, now, calendar))
            paused = values["paused_business_seconds"]
        if status == "resolved":
            values["resolved_at"] = now
            if ticket.resolution_seconds is None:  # the first resolution; a reopened ticket keeps it
                values["resolution_seconds"] = (now - ticket.created_at).total_seconds()
                values["resolution_business_seconds"] = max(0.0, calendar.elapsed(ticket.created_at, now).total_seconds() - paused)
                values["resolution_met"] = ticket.resolution_due_at is None or now <= ticket.resolution_due_at
            events.record(c, f"resolved:{key}", "resolved", ticket_id, now, {"by": by})
        elif ticket.status == "resolved":
            values["resolved_at"] = None
            values["reopened_count"] = (ticket.reopened_count or 0) + 1
            events.record(c, f"reopened:{key}", "reopened", ticket_id, now, {"by": by})
        tickets.change(c, ticket_id, values)
        return True


def _resumed(ticket: Any, now: datetime, calendar: BusinessCalendar) -> dict[str, Any]:
    """Changes of a ticket leaving ``pending``: due times moved on, the paused business time counted."""
    values: dict[str, Any] = {
        "sla_paused_at": None,
        "resolution_due_at": resume(ticket.resolution_due_at, ticket.sla_paused_at, now, calendar),
        "paused_business_seconds": (ticket.paused_business_seconds or 0.0) + calendar.elapsed(ticket.sla_paused_at, now).total_seconds(),
    }
    if ticket.first_response_at is None:
        values["first_response_due_at"] = resume(ticket.first_response_due_at, ticket.sla_paused_at, now, calendar)
    return values


def record_first_response(engine: Engine, desk: Desk, ticket_id: int, at: datetime, *, by: str, key: str) -> bool:
    """The first reply to the enquirer (not a note, not an acknowledgement): measure it once."""
    with engine.begin() as c:
        ticket = tickets.get(c, ticket_id, lock=True)
        if ticket is None or ticket.first_response_at is not None:
            return False
        calendar = desk.calendar(ticket.team)
        business = max(0.0, calendar.elapsed(ticket.created_at, at).total_seconds() - (ticket.paused_business_seconds or 0.0))
        met = ticket.first_response_due_at is None or at <= ticket.first_response_due_at
        tickets.change(c, ticket_id, {
            "first_response_at": at, "first_response_seconds": (at - ticket.created_at).total_seconds(),
            "first_response_business_seconds": business, "first_response_met": met, "updated_at": at,
        })
        events.record(c, f"first_response:{ticket_id}", "first_response", ticket_id, at, {"by": by, "met": met, "key": key})
        return True


def away_assignees(engine: Engine, desk: Desk, now: datetime) -> list[tuple[int, str, str]]:
    """(ticket, assignee, why) for unanswered open tickets whose assignee cannot work on them now."""
    found = []
    for ticket_id, team_key, assignee in tickets.unanswered_assigned(engine):
        team = desk.team(team_key)
        if team is None or not team.reassign_when_away:
            continue
        member = next((m for m in team.members if m.key == assignee), None)
        why = availability(member, team, now) if member is not None else "no longer in the team"
        if why is not None:
            found.append((ticket_id, assignee, why))
    return found


def resume_on_enquirer_reply(desk: Desk) -> Any:
    """The pipeline's hook for a reply on a ticket waiting on its enquirer: open again, the SLA clock resumed."""

    def hook(tx: IntakeTx, ticket_id: int, now: datetime) -> dict[str, Any]:
        ticket = tx.ticket(ticket_id)
        values: dict[str, Any] = {"status": "open", "sla_paused_at": None}
        if ticket is not None and ticket.sla_paused_at is not None:
            values.update(_resumed(ticket, now, desk.calendar(ticket.team)))
            tx.add_event_once(event_row(f"resumed:{ticket_id}:{ticket.sla_paused_at.isoformat()}", "status_changed", ticket_id, now,
                                        {"from": "pending", "to": "open", "by": "enquirer reply"}))
        return values

    return hook


def assign_to(engine: Engine, desk: Desk, ticket_id: int, member: str, now: datetime, *, by: str, key: str) -> AssignResult:
    """Staff put a ticket with a given person (Claim, Assign to…): no capacity check, the choice is theirs."""
    with engine.begin() as c:
        ticket = tickets.get(c, ticket_id, lock=True)
        if ticket is None:
            return AssignResult("unknown", ticket_id)
        if ticket.assignee == member:
            return AssignResult("already", ticket_id, member)
        number = ticket.assignment_count + 1
        note = {"member": member, "reasons": [f"{'claimed' if by == member else 'assigned'} by {by}"], "at": now.isoformat(), "team": ticket.team}
        if not events.record(c, key, "reassigned" if ticket.assignee else "assigned", ticket_id, now, {**note, "from": ticket.assignee, "by": by}):
            return AssignResult("already", ticket_id, ticket.assignee)
        values: dict[str, Any] = {"assignee": member, "assigned_at": now, "assignment_count": number, "assignment": note, "updated_at": now}
        if ticket.status == "new":
            values["status"] = "open"
        values.update(_sla_changes(ticket, desk, now))
        tickets.change(c, ticket_id, values)
        return AssignResult("assigned", ticket_id, member, tuple(note["reasons"]))


def add_staff_message(
    engine: Engine, ticket_id: int, text: str, now: datetime, *, author: str, key: str, note: bool,
    sent_as: tuple[str, str] | None = None, kind: str = "reply", subject: str = "",
) -> StaffMessage:
    """Record a staff reply (queued for sending, with its outbox row) or an internal note. Idempotent by ``key``.

    ``sent_as`` = (channel, external id) when the reply was already delivered (a staff member answering
    directly in the enquirer's Slack thread): it is stored as sent. The result says whether it was recorded now,
    before, or not at all (no such ticket), and unpacks as (message id, outbox key to enqueue).
    """
    return _add_staff_message(engine, ticket_id, text, now, author=author, key=key, note=note, sent_as=sent_as, kind=kind, subject=subject)
