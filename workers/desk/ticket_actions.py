"""Every staff action on a ticket, done the same way from Slack, the command line and the web.

A surface names who acts (a person of the teams file, by key) and an idempotency key for the
attempt; ``TicketActions`` asks ``workers.desk.permissions`` whether that person's roles allow the
action, does it through the desk operations of ``workers.desk.operations``, and answers with an ``Outcome``.
A refused action changes nothing, is recorded in the audit log with who tried, and raises
``Forbidden`` for the surface to answer in its own way. The same key twice changes the ticket once.

Replies create an outbox row; the surface enqueues ``Outcome.effects`` once it has the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Engine

from storage import audit, queries
from storage.corrections import record_correction
from storage.errors import UnknownTicket
from storage.models import utcnow
from workers.desk.operations import Desk, add_staff_message, assign_to, set_status
from workers.desk.permissions import Actor, Staff
from workers.errors import Forbidden
from workers.desk.replies import render_canned

Status = Literal["done", "unchanged", "unknown_ticket", "invalid"]
STATUS_OF = {"pending": "pending", "resolve": "resolved", "reopen": "open"}


@dataclass(frozen=True)
class Outcome:
    """What an action did: ``done`` (changed the ticket), ``unchanged`` (already so, or this key was done before),
    ``unknown_ticket``, or ``invalid`` (a choice the desk does not know, with ``detail``)."""

    action: str
    ticket_id: int
    status: Status
    effects: tuple[str, ...] = ()  # outbox keys to enqueue
    message_id: int | None = None
    detail: str = ""

    @property
    def done(self) -> bool:
        return self.status == "done"


class TicketActions:
    def __init__(self, engine: Engine, desk: Desk, *, surface: str, people: Staff | None = None) -> None:
        self.engine = engine
        self.desk = desk
        self.surface = surface
        self.people = people or Staff(desk.config)
        self.members = frozenset(m.key for t in desk.config.teams.teams.values() for m in t.members)

    # -- permission -----------------------------------------------------------------------------
    def authorise(self, actor: str | None, action: str, ticket_id: int | None, *, attempt: str, who: str | None = None) -> Actor:
        """The acting person, if their roles allow ``action``; otherwise the refusal is audited and Forbidden raised.

        ``attempt`` keys the audit entry (a retried delivery of one attempt is recorded once); ``who`` names
        the one who tried when they are no person of the desk (a Slack user id, a web login).
        """
        try:
            return self.people.authorise(actor, action)
        except Forbidden as exc:
            tried = who or actor or "nobody"
            audit.record(self.engine, f"refused:{self.surface}:{tried}:{attempt}:{action}", actor=tried, surface=self.surface,
                         action=action, target=f"{self.desk.prefix}-{ticket_id}" if ticket_id is not None else "", outcome="refused",
                         detail={"reason": exc.reason})
            raise

    def _exists(self, ticket_id: int) -> bool:
        with self.engine.connect() as c:
            return queries.ticket_exists(c, ticket_id)

    # -- working a ticket ------------------------------------------------------------------------
    def claim(self, actor: str | None, ticket_id: int, *, key: str, now: datetime | None = None) -> Outcome:
        person = self.authorise(actor, "claim", ticket_id, attempt=key)
        return self._assigned("claim", ticket_id, person.key, person.key, key, now)

    def assign(self, actor: str | None, ticket_id: int, member: str, *, key: str, now: datetime | None = None) -> Outcome:
        """Pass the ticket to ``member`` (assigning it to oneself is claiming, and needs only that right)."""
        action = "claim" if member == actor else "assign"
        person = self.authorise(actor, action, ticket_id, attempt=key)
        if member not in self.members:
            return Outcome(action, ticket_id, "invalid", detail=f"{member} is not a member of a team")
        return self._assigned(action, ticket_id, member, person.key, key, now)

    def _assigned(self, action: str, ticket_id: int, member: str, by: str, key: str, now: datetime | None) -> Outcome:
        result = assign_to(self.engine, self.desk, ticket_id, member, now or utcnow(), by=by, key=f"{action}:{key}")
        status: Status = {"assigned": "done", "unknown": "unknown_ticket"}.get(result.outcome, "unchanged")  # type: ignore[assignment]
        return Outcome(action, ticket_id, status, result.effects)

    def reply(self, actor: str | None, ticket_id: int, text: str, *, key: str, now: datetime | None = None) -> Outcome:
        person = self.authorise(actor, "reply", ticket_id, attempt=key)
        return self._message("reply", ticket_id, text, person.key, key, now, note=False)

    def note(self, actor: str | None, ticket_id: int, text: str, *, key: str, now: datetime | None = None) -> Outcome:
        person = self.authorise(actor, "note", ticket_id, attempt=key)
        return self._message("note", ticket_id, text, person.key, key, now, note=True)

    def canned(self, actor: str | None, ticket_id: int, name: str, *, key: str, now: datetime | None = None) -> Outcome:
        person = self.authorise(actor, "canned", ticket_id, attempt=key)
        try:
            text = render_canned(self.engine, self.desk, ticket_id, name, agent=person.key)
        except LookupError as exc:  # no such canned reply (UnknownCanned) or no such ticket
            return Outcome("canned", ticket_id, "invalid", detail=str(exc))
        return self._message("canned", ticket_id, text, person.key, f"canned:{key}", now, note=False)

    def _message(self, action: str, ticket_id: int, text: str, by: str, key: str, now: datetime | None, *, note: bool) -> Outcome:
        if not text.strip():
            return Outcome(action, ticket_id, "invalid", detail="the text is empty")
        if not self._exists(ticket_id):
            return Outcome(action, ticket_id, "unknown_ticket")
        message_id, effect = add_staff_message(self.engine, ticket_id, text, now or utcnow(), author=by, key=key, note=note)
        if message_id is None:
            return Outcome(action, ticket_id, "unchanged")
        return Outcome(action, ticket_id, "done", (effect,) if effect else (), message_id)

    def reclassify(self, actor: str | None, ticket_id: int, field: Literal["type", "sector"], value: str, *, key: str) -> Outcome:
        """Correct the type or sector; the correction, made by a person of the desk, becomes training data."""
        person = self.authorise(actor, "reclassify", ticket_id, attempt=key)
        taxonomy = self.desk.config.taxonomy
        allowed = taxonomy.types if field == "type" else taxonomy.sectors
        if value not in allowed:
            return Outcome("reclassify", ticket_id, "invalid", detail=f"unknown {field} {value!r} (one of {', '.join(allowed)})")
        try:
            result = record_correction(self.engine, ticket_id=ticket_id, field=field, new_value=value, by=person.key, key=key,
                                       source=self.surface)
        except UnknownTicket:
            return Outcome("reclassify", ticket_id, "unknown_ticket")
        changed = result.recorded and result.old_value != value
        return Outcome("reclassify", ticket_id, "done" if changed else "unchanged", detail=f"{result.old_value} → {value}" if changed else value)

    def pending(self, actor: str | None, ticket_id: int, *, key: str, now: datetime | None = None) -> Outcome:
        """Waiting on the enquirer: the SLA clock pauses until they answer or staff reopen the ticket."""
        return self._status("pending", actor, ticket_id, key, now)

    def resolve(self, actor: str | None, ticket_id: int, *, key: str, now: datetime | None = None) -> Outcome:
        return self._status("resolve", actor, ticket_id, key, now)

    def reopen(self, actor: str | None, ticket_id: int, *, key: str, now: datetime | None = None) -> Outcome:
        return self._status("reopen", actor, ticket_id, key, now)

    def _status(self, action: str, actor: str | None, ticket_id: int, key: str, now: datetime | None) -> Outcome:
        person = self.authorise(actor, action, ticket_id, attempt=key)
        if not self._exists(ticket_id):
            return Outcome(action, ticket_id, "unknown_ticket")
        changed = set_status(self.engine, self.desk, ticket_id, STATUS_OF[action], now or utcnow(), by=person.key, key=f"{action}:{key}")
        return Outcome(action, ticket_id, "done" if changed else "unchanged")
