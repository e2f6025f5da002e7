"""What the helpdesk says in Slack: SLA warnings, escalations, digests, assignment cards (Block Kit)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from workers.outbound.escaping import slack as _esc


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def _when(at: datetime | None) -> str:
    if at is None:
        return "—"
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time}}|{at:%Y-%m-%d %H:%M} UTC>"


def mention(slack_user: str | None, fallback: str) -> str:
    return f"<@{slack_user}>" if slack_user else fallback


def sla_warning(number: str, subject: str, clock: str, due: datetime, assignee: str, share: float) -> tuple[str, list[dict]]:
    text = f"⏳ {number} is at {share:.0%} of its {clock} target — due {due:%Y-%m-%d %H:%M} UTC. {assignee}"
    blocks = [_section(f"⏳ *{number}* — {_esc(subject)}\nAt *{share:.0%}* of its *{clock}* target, due {_when(due)}.\nAssignee: {assignee}")]
    return text, blocks


def sla_breach(number: str, subject: str, clock: str, due: datetime, assignee: str, lead: str, team: str) -> tuple[str, list[dict]]:
    text = f"🚨 {number} breached its {clock} target (due {due:%Y-%m-%d %H:%M} UTC). Escalated to {lead}."
    blocks = [_section(f"🚨 *{number}* — {_esc(subject)}\n*{clock}* target breached (due {_when(due)}).\n"
                       f"Team {team} · assignee {assignee} · escalated to {lead}")]
    return text, blocks


def digest(team_name: str, day: str, counts: dict[str, int], at_risk: list[str], breached: list[str]) -> tuple[str, list[dict]]:
    line = (f"new {counts['new']} · open {counts['open']} · waiting on enquirer {counts['pending']} · "
            f"unassigned {counts['backlog']} · at risk {counts['at_risk']} · breached {counts['breached']}")
    blocks = [_section(f"☀️ *{_esc(team_name)}* — digest for {day}\n{line}")]
    if at_risk:
        blocks.append(_section("*At risk:* " + ", ".join(at_risk[:20])))
    if breached:
        blocks.append(_section("*Breached:* " + ", ".join(breached[:20])))
    return f"{team_name} digest {day}: {line}", blocks
