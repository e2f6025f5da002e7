"""Periodic jobs of the scheduler. Each is idempotent: run twice, the same effect (keys, not hopes).

- ``sla``: warn at the policy's share of a target, escalate at breach;
- ``backlog``: assign waiting tickets, oldest first, as capacity frees and shifts start;
- ``away``: reassign unanswered tickets whose assignee went off shift or on leave;
- ``digest``: one daily digest per team at its local time;
- ``outbox``: re-enqueue side effects the queue may have lost;
- ``retention``: with ``HELPDESK_RETENTION_DAYS``, delete bodies and raw mail of tickets closed longer ago.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from storage import alerts, events, outbox, tickets
from workers.outbound import messages
from workers.desk.operations import Desk, assign, away_assignees
from workers.ops.health import Problem
from workers.desk.sla import progress


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds // 3600} h {seconds % 3600 // 60} min" if seconds >= 3600 else f"{seconds // 60} min {seconds % 60} s"

Enqueue = Callable[[str], None]


class Jobs:
    def __init__(
        self,
        engine: Engine,
        desk: Desk,
        enqueue: Enqueue,
        *,
        health: Callable[[], list[Problem]] | None = None,
        ops_channel: str | None = None,
        retention: Callable[[datetime], dict[str, int]] | None = None,
    ) -> None:
        self.engine = engine
        self.desk = desk
        self.enqueue = enqueue
        self.health = health
        self.ops_channel = ops_channel
        self.retention_job = retention
        self.by_name: dict[str, Callable[[datetime], dict[str, int]]] = {
            "sla": self.sla,
            "backlog": self.backlog,
            "away": self.away,
            "digest": self.digest,
            "outbox": self.outbox,
            "alerts": self.alerts,
            "retention": self.retention,
        }

    def run(self, name: str, now: datetime) -> dict[str, int]:
        return self.by_name[name](now)

    def retention(self, now: datetime) -> dict[str, int]:
        """Bodies and raw mail kept no longer than the desk's retention (nothing without one)."""
        return self.retention_job(now) if self.retention_job is not None else {}

    # -- SLA -------------------------------------------------------------------------------
    def sla(self, now: datetime) -> dict[str, int]:
        counts = {"warned": 0, "breached": 0}
        warn_at = self.desk.config.sla.warn_at
        for ticket in tickets.with_running_clocks(self.engine):
            clocks = [("resolution", ticket.resolution_due_at)]
            if ticket.first_response_at is None and ticket.first_response_due_at is not None:
                clocks.insert(0, ("first response", ticket.first_response_due_at))
            for clock, due in clocks:
                share = progress(ticket.created_at, due, now, self.desk.calendar(ticket.team))
                if share >= 1.0:
                    counts["breached"] += self._breach(ticket, clock, due, now)
                elif share >= warn_at:
                    counts["warned"] += self._warn(ticket, clock, due, share, now)
        return counts

    def _warn(self, ticket: Any, clock: str, due: datetime, share: float, now: datetime) -> int:
        team = self.desk.team(ticket.team)
        key = f"sla-warn:{ticket.id}:{clock}:{due.isoformat()}"
        assignee = messages.mention(self.desk.slack_user(ticket.assignee), self.desk.member_name(ticket.assignee))
        text, blocks = messages.sla_warning(self._number(ticket), ticket.subject, clock, due, assignee, share)
        with self.engine.begin() as c:
            if not events.record(c, key, "sla_warning", ticket.id, now, {"clock": clock, "due": due.isoformat(), "share": round(share, 3)}):
                return 0
            if team is not None and team.slack_channel:
                outbox.add(c, key, "slack_post", ticket.id, {"channel": team.slack_channel, "text": text, "blocks": blocks}, now)
        self.enqueue(key)
        return 1

    def _breach(self, ticket: Any, clock: str, due: datetime, now: datetime) -> int:
        team = self.desk.team(ticket.team)
        key = f"sla-breach:{ticket.id}:{clock}:{due.isoformat()}"
        lead = next((m for m in (team.members if team else ()) if m.lead), None)
        lead_text = messages.mention(lead.slack_user, lead.name) if lead else "the team"
        assignee = messages.mention(self.desk.slack_user(ticket.assignee), self.desk.member_name(ticket.assignee))
        text, blocks = messages.sla_breach(self._number(ticket), ticket.subject, clock, due, assignee, lead_text, team.name if team else ticket.team)
        channel = (team.escalation_channel or team.slack_channel) if team else None
        with self.engine.begin() as c:
            data = {"clock": clock, "due": due.isoformat(), "to": lead.key if lead else None}
            if not events.record(c, key, "sla_breached", ticket.id, now, data):
                return 0
            events.record(c, f"escalated:{key}", "escalated", ticket.id, now, data)
            if channel:
                outbox.add(c, key, "slack_post", ticket.id, {"channel": channel, "text": text, "blocks": blocks}, now)
        self.enqueue(key)
        return 1

    # -- assignment -------------------------------------------------------------------------
    def backlog(self, now: datetime) -> dict[str, int]:
        waiting = tickets.waiting_for_assignee(self.engine)
        full: set[str] = set()
        assigned = 0
        for ticket_id, team in waiting:  # oldest first; once a team has nobody free, its younger tickets wait too
            if team in full:
                continue
            result = assign(self.engine, self.desk, ticket_id, now)
            if result.outcome == "assigned":
                assigned += 1
                for key in result.effects:
                    self.enqueue(key)
            elif result.outcome == "backlog":
                full.add(team)
        return {"assigned": assigned, "waiting": len(waiting) - assigned}

    def away(self, now: datetime) -> dict[str, int]:
        moved = 0
        for ticket_id, assignee, why in away_assignees(self.engine, self.desk, now):
            result = assign(self.engine, self.desk, ticket_id, now, force=True, exclude=assignee, because=f"{assignee} {why}")
            if result.outcome == "assigned":
                moved += 1
                for key in result.effects:
                    self.enqueue(key)
        return {"reassigned": moved}

    # -- digest ----------------------------------------------------------------------------
    def digest(self, now: datetime) -> dict[str, int]:
        posted = 0
        for key_name, team in self.desk.config.teams.teams.items():
            if not team.digest_at or not team.slack_channel:
                continue
            local = now.astimezone(ZoneInfo(team.calendar.timezone))
            if local.strftime("%H:%M") < team.digest_at or not self.desk.calendar(key_name).is_working_day(local.date()):
                continue
            key = f"digest:{key_name}:{local.date().isoformat()}"
            if outbox.get(self.engine, key) is not None:
                continue
            counts, at_risk, breached = self._digest_counts(key_name, now)
            text, blocks = messages.digest(team.name, local.date().isoformat(), counts, at_risk, breached)
            with self.engine.begin() as c:
                if outbox.add(c, key, "slack_post", None, {"channel": team.slack_channel, "text": text, "blocks": blocks}, now):
                    events.record(c, key, "digest_posted", None, now, {"team": key_name, **counts})
                    posted += 1
            self.enqueue(key)
        return {"posted": posted}

    def _digest_counts(self, team: str, now: datetime) -> tuple[dict[str, int], list[str], list[str]]:
        unresolved = tickets.unresolved_of_team(self.engine, team)
        new_ids = events.tickets_with(self.engine, "ticket_created", now - timedelta(days=1))
        calendar = self.desk.calendar(team)
        at_risk, breached = [], []
        for t in unresolved:
            due = t.first_response_due_at if t.first_response_at is None else t.resolution_due_at
            if due is None or t.status == "pending":
                continue
            share = progress(t.created_at, due, now, calendar)
            if share >= 1:
                breached.append(self._number(t))
            elif share >= self.desk.config.sla.warn_at:
                at_risk.append(self._number(t))
        counts = {
            "new": sum(1 for t in unresolved if t.id in new_ids),
            "open": sum(1 for t in unresolved if t.status in ("new", "open")),
            "pending": sum(1 for t in unresolved if t.status == "pending"),
            "backlog": sum(1 for t in unresolved if t.assignee is None),
            "at_risk": len(at_risk),
            "breached": len(breached),
        }
        return counts, at_risk, breached

    # -- outbox ----------------------------------------------------------------------------
    def outbox(self, now: datetime) -> dict[str, int]:
        keys = outbox.stale_keys(self.engine, now)
        for key in keys:
            self.enqueue(key)
        return {"requeued": len(keys)}

    # -- operator alerts ---------------------------------------------------------------------
    def alerts(self, now: datetime) -> dict[str, int]:
        """Open an alert for each new problem, close it with a recovery notice when it clears — each posted once."""
        if self.health is None:
            return {"opened": 0, "closed": 0}
        problems = {p.key: p for p in self.health()}
        opened = closed = 0
        open_alerts = alerts.open_alerts(self.engine)
        for key, problem in problems.items():
            if key in open_alerts:
                continue
            since = now.isoformat()
            with self.engine.begin() as c:
                alerts.open_alert(c, key, condition=problem.condition, subject=problem.subject, detail=problem.detail, at=now)
                icon = "🔴" if problem.severity == "unhealthy" else "🟠"
                opened += self._alert_post(c, f"alert:{key}:{since}", f"{icon} {problem.detail}", now)
                events.record(c, f"alert:{key}:{since}", "alert_opened", None, now, {"condition": problem.condition, "subject": problem.subject})
        for key, alert in open_alerts.items():
            if key in problems:
                continue
            with self.engine.begin() as c:
                alerts.close_alert(c, key, now)
                lasted = now - alert.since
                closed += self._alert_post(c, f"recovered:{key}:{alert.since.isoformat()}",
                                           f"✅ recovered after {_human(lasted)}: {alert.detail}", now)
                events.record(c, f"recovered:{key}:{alert.since.isoformat()}", "alert_closed", None, now, {"condition": alert.condition, "subject": alert.subject})
        return {"opened": opened, "closed": closed}

    def _alert_post(self, c: Any, key: str, text: str, now: datetime) -> int:
        if not self.ops_channel:
            return 1
        if outbox.add(c, key, "slack_post", None, {"channel": self.ops_channel, "text": text}, now):
            self.enqueue(key)
            return 1
        return 0

    def _number(self, ticket: Any) -> str:
        return f"{self.desk.prefix}-{ticket.id}"
