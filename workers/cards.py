"""The assignment card: a ticket as staff see it in their team's Slack channel."""

from __future__ import annotations

from typing import Any

from workers.desk import Desk


def card(ticket: Any, desk: Desk) -> tuple[str, list[dict[str, Any]]]:
    number = f"{desk.prefix}-{ticket.id}"
    labels = ticket.classification or {}

    def label(name: str) -> str:
        entry = labels.get(name) or {}
        value = getattr(ticket, name)
        confidence = entry.get("confidence")
        return f"{value} ({confidence:.0%})" if isinstance(confidence, (int, float)) else str(value)

    assignee = desk.slack_user(ticket.assignee)
    who = f"<@{assignee}>" if assignee else (desk.member_name(ticket.assignee) if ticket.assignee else "_unassigned (backlog)_")
    due = ticket.first_response_due_at
    status = {"new": "🆕 new", "open": "🟢 open", "pending": "⏸ waiting on enquirer", "resolved": "✅ resolved"}.get(ticket.status, ticket.status)
    fields = [
        f"*Type:* {label('type')}" + (" ⚑ needs triage" if ticket.needs_triage else ""),
        f"*Sector:* {label('sector')}",
        f"*Language:* {label('language')}",
        f"*Channel:* {ticket.channel}",
        f"*Assignee:* {who}",
        f"*First response due:* {due:%Y-%m-%d %H:%M} UTC" if due else "*First response due:* —",
        f"*Priority:* {ticket.priority}",
        f"*Status:* {status}",
    ]
    text = f"{number} · {ticket.subject[:150]} · {ticket.type} · {ticket.sector} · {ticket.status}"
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": f"{number} · {ticket.subject[:120] or '(no subject)'}"[:150]}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"routed by rule *{ticket.routing_rule}* to {ticket.team}"}]},
    ]
    return text, blocks
