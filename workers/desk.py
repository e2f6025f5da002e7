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

from sqlalchemy import Connection, Engine, func, select, update

from config.desk import DeskConfig, Team
from storage import outbox
from storage.intake_store import EVENT, TICKET
from storage.models import TeamState
from workers.assignment import availability, choose
from workers.business_hours import BusinessCalendar
from workers.sla import due_times, policy_for, resume

TEAM_STATE = TeamState.__table__
OPEN_STATUSES = ("new", "open", "pending")


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


def _insert(c: Connection) -> Any:
    return outbox.insert_factory(c)


def _event(c: Connection, key: str, kind: str, ticket_id: int | None, at: datetime, data: dict[str, Any]) -> bool:
    inserted = c.execute(
        _insert(c)(EVENT).values(key=key[:255], kind=kind, ticket_id=ticket_id, channel=None, at=at, data=data)
        .on_conflict_do_nothing(index_elements=["key"]).returning(EVENT.c.id)
    ).scalar()
    return inserted is not None


def _lock_team(c: Connection, team: str, at: datetime) -> str | None:
    """Lock the team's row for this transaction (created on first use); returns the round-robin pointer."""
    c.execute(_insert(c)(TEAM_STATE).values(team=team, last_assignee=None, updated_at=at).on_conflict_do_nothing(index_elements=["team"]))
    stmt = select(TEAM_STATE.c.last_assignee).where(TEAM_STATE.c.team == team)
    if c.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return c.execute(stmt).scalar()


def loads(c: Connection, members: list[str]) -> dict[str, int]:
    """Open tickets per member, across every team they are in."""
    rows = c.execute(
        select(TICKET.c.assignee, func.count()).where(TICKET.c.assignee.in_(members), TICKET.c.status.in_(OPEN_STATUSES))
        .group_by(TICKET.c.assignee)
    )
    return {assignee: count for assignee, count in rows}


def assign(
    engine: Engine, desk: Desk, ticket_id: int, now: datetime, *, force: bool = False, exclude: str | None = None, because: str | None = None
) -> AssignResult:
    """Assign ``ticket_id`` within its team (or leave it in the backlog, saying why); set its SLA clock once.

    Idempotent: a ticket already assigned stays with its assignee unless ``force`` (reassignment).
    """
    with engine.begin() as c:
        ticket = c.execute(select(TICKET).where(TICKET.c.id == ticket_id).with_for_update()).first()
        if ticket is None:
            return AssignResult("unknown", ticket_id)
        if ticket.status == "resolved":
            return AssignResult("closed", ticket_id)
        team = desk.team(ticket.team)
        if team is None:
            return AssignResult("backlog", ticket_id, None, (f"team {ticket.team!r} is not configured",))
        last = _lock_team(c, ticket.team, now)
        changes: dict[str, Any] = _sla_changes(ticket, desk, now)
        if ticket.assignee and not force:
            if changes:
                c.execute(update(TICKET).where(TICKET.c.id == ticket_id).values(**changes))
            return AssignResult("already", ticket_id, ticket.assignee)
        member_keys = [m.key for m in team.members if m.key != exclude]
        counts = loads(c, member_keys)
        candidates = team.model_copy(update={"members": tuple(m for m in team.members if m.key != exclude)})
        choice = choose(candidates, counts, last, now)
        reasons = [*([because] if because else []), *choice.reasons]
        note = {"member": choice.member, "reasons": reasons, "at": now.isoformat(), "team": ticket.team}
        changes.update(assignment=note, updated_at=now)
        if choice.member is None:
            c.execute(update(TICKET).where(TICKET.c.id == ticket_id).values(**changes))
            _event(c, f"backlog:{ticket_id}:{ticket.assignment_count}", "backlogged", ticket_id, now, note)
            return AssignResult("backlog", ticket_id, None, tuple(reasons))
        number = ticket.assignment_count + 1
        changes.update(assignee=choice.member, assigned_at=now, assignment_count=number,
                       status="open" if ticket.status == "new" else ticket.status)
        c.execute(update(TICKET).where(TICKET.c.id == ticket_id).values(**changes))
        c.execute(update(TEAM_STATE).where(TEAM_STATE.c.team == ticket.team).values(last_assignee=choice.member, updated_at=now))
        kind = "reassigned" if ticket.assignee else "assigned"
        _event(c, f"{kind}:{ticket_id}:{number}", kind, ticket_id, now,
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
        ticket = c.execute(select(TICKET).where(TICKET.c.id == ticket_id).with_for_update()).first()
        if ticket is None or ticket.status == status:
            return False
        if not _event(c, key, "status_changed", ticket_id, now, {"from": ticket.status, "to": status, "by": by}):
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
            _event(c, f"resolved:{key}", "resolved", ticket_id, now, {"by": by})
        elif ticket.status == "resolved":
            values["resolved_at"] = None
            values["reopened_count"] = (ticket.reopened_count or 0) + 1
            _event(c, f"reopened:{key}", "reopened", ticket_id, now, {"by": by})
        c.execute(update(TICKET).where(TICKET.c.id == ticket_id).values(**values))
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
        ticket = c.execute(select(TICKET).where(TICKET.c.id == ticket_id).with_for_update()).first()
        if ticket is None or ticket.first_response_at is not None:
            return False
        calendar = desk.calendar(ticket.team)
        business = max(0.0, calendar.elapsed(ticket.created_at, at).total_seconds() - (ticket.paused_business_seconds or 0.0))
        met = ticket.first_response_due_at is None or at <= ticket.first_response_due_at
        c.execute(update(TICKET).where(TICKET.c.id == ticket_id).values(
            first_response_at=at, first_response_seconds=(at - ticket.created_at).total_seconds(),
            first_response_business_seconds=business, first_response_met=met, updated_at=at,
        ))
        _event(c, f"first_response:{ticket_id}", "first_response", ticket_id, at, {"by": by, "met": met, "key": key})
        return True


def away_assignees(engine: Engine, desk: Desk, now: datetime) -> list[tuple[int, str, str]]:
    """(ticket, assignee, why) for unanswered open tickets whose assignee cannot work on them now."""
    found = []
    with engine.connect() as c:
        rows = c.execute(
            select(TICKET.c.id, TICKET.c.team, TICKET.c.assignee)
            .where(TICKET.c.status.in_(("open", "new")), TICKET.c.assignee.is_not(None), TICKET.c.first_response_at.is_(None))
        ).all()
    for ticket_id, team_key, assignee in rows:
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

    def hook(tx: Any, ticket_id: int, now: datetime) -> dict[str, Any]:
        ticket = tx.c.execute(select(TICKET).where(TICKET.c.id == ticket_id)).first()
        values: dict[str, Any] = {"status": "open", "sla_paused_at": None}
        if ticket is not None and ticket.sla_paused_at is not None:
            values.update(_resumed(ticket, now, desk.calendar(ticket.team)))
            _event(tx.c, f"resumed:{ticket_id}:{ticket.sla_paused_at.isoformat()}", "status_changed", ticket_id, now,
                   {"from": "pending", "to": "open", "by": "enquirer reply"})
        return values

    return hook


def assign_to(engine: Engine, desk: Desk, ticket_id: int, member: str, now: datetime, *, by: str, key: str) -> AssignResult:
    """Staff put a ticket with a given person (Claim, Assign to…): no capacity check, the choice is theirs."""
    with engine.begin() as c:
        ticket = c.execute(select(TICKET).where(TICKET.c.id == ticket_id).with_for_update()).first()
        if ticket is None:
            return AssignResult("unknown", ticket_id)
        if ticket.assignee == member:
            return AssignResult("already", ticket_id, member)
        number = ticket.assignment_count + 1
        note = {"member": member, "reasons": [f"{'claimed' if by == member else 'assigned'} by {by}"], "at": now.isoformat(), "team": ticket.team}
        if not _event(c, key, "reassigned" if ticket.assignee else "assigned", ticket_id, now, {**note, "from": ticket.assignee, "by": by}):
            return AssignResult("already", ticket_id, ticket.assignee)
        values: dict[str, Any] = {"assignee": member, "assigned_at": now, "assignment_count": number, "assignment": note, "updated_at": now}
        if ticket.status == "new":
            values["status"] = "open"
        values.update(_sla_changes(ticket, desk, now))
        c.execute(update(TICKET).where(TICKET.c.id == ticket_id).values(**values))
        return AssignResult("assigned", ticket_id, member, tuple(note["reasons"]))


def add_staff_message(
    engine: Engine, ticket_id: int, text: str, now: datetime, *, author: str, key: str, note: bool,
    sent_as: tuple[str, str] | None = None, kind: str = "reply", subject: str = "",
) -> tuple[int | None, str | None]:
    """Record a staff reply (queued for sending, with its outbox row) or an internal note. Idempotent by ``key``.

    ``sent_as`` = (channel, external id) when the reply was already delivered (a staff member answering
    directly in the enquirer's Slack thread): it is stored as sent. Returns (message id, outbox key to enqueue).
    """
    from storage.intake_store import MESSAGE  # noqa: PLC0415

    with engine.begin() as c:
        ticket = c.execute(select(TICKET.c.id, TICKET.c.channel).where(TICKET.c.id == ticket_id)).first()
        if ticket is None:
            return None, None
        channel, external_id = sent_as or (ticket.channel, f"out:{key}")
        row = {"ticket_id": ticket_id, "channel": channel, "external_id": external_id[:998], "direction": "out",
               "kind": "note" if note else kind, "author": author, "text": text, "content_hash": _hash(text), "subject": subject[:2000],
               "status": None if note else ("sent" if sent_as else "queued"), "received_at": now, "stored_at": now, "source": f"staff:{author}"}
        message_pk = c.execute(
            _insert(c)(MESSAGE).values(**row).on_conflict_do_nothing(index_elements=["channel", "external_id"]).returning(MESSAGE.c.id)
        ).scalar()
        if message_pk is None:
            return None, None  # recorded before
        _event(c, f"{'note' if note else kind}:{message_pk}", "note_added" if note else f"{kind}_queued", ticket_id, now, {"by": author})
        if note or sent_as:
            return message_pk, None
        effect = f"reply:{message_pk}"
        outbox.add(c, effect, "send_reply", ticket_id, {"message": message_pk}, now)
        return message_pk, effect


def _hash(text: str) -> str:
    import hashlib  # noqa: PLC0415

    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
