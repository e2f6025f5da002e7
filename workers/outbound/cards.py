"""The assignment card: a ticket as staff see it in their team's Slack channel."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine

from storage import outbox, tickets
from workers.outbound import escaping
from workers.desk.operations import Desk

if TYPE_CHECKING:
    from storage.models import Ticket

SUMMARY_CHARS = 280


@dataclass(frozen=True)
class Enquirer:
    name: str = ""
    address: str = ""
    organisation: str = ""
    summary: str = ""
    domain: str = ""
    stages: tuple[tuple[str, str], ...] = ()  # (standard, stage) of the organisation's implementations


def load(source: Engine | Connection, ticket_id: int) -> tuple[Ticket, Enquirer] | None:
    """A ticket with who asked (name, address, organisation) and the start of what they asked."""
    found = tickets.with_enquirer(source, ticket_id)
    if found is None:
        return None
    ticket, facts = found
    summary = " ".join(facts.first_text.split())
    if len(summary) > SUMMARY_CHARS:
        summary = summary[:SUMMARY_CHARS].rsplit(" ", 1)[0] + " …"
    return ticket, Enquirer(name=facts.name, address=facts.address, organisation=facts.organisation, summary=summary,
                            domain=facts.domain, stages=facts.stages)


def escape(text: str) -> str:
    """Enquirers' words shown as text, never as Slack markup (no surprise @channel, no disguised links)."""
    return escaping.slack(text)


def queue_card_update(engine: Engine, ticket_id: int, key: str) -> str | None:
    """The outbox row that redraws the ticket's card after the change ``key``; its key, or None when queued before."""
    effect = f"card-update:{ticket_id}:{key}"
    return effect if outbox.put(engine, effect, "slack_update", ticket_id, {}) else None


def _who(channel: str, enquirer: Enquirer) -> str:
    """The enquirer's name and address; a Slack user as a mention, which Slack shows as their current name."""
    address = ""
    if channel == "slack" and re.fullmatch(r"[UW][A-Z0-9]{2,20}", enquirer.address):
        address = f"<@{enquirer.address}>"
    elif enquirer.address and enquirer.address != enquirer.name:
        address = escape(f"<{enquirer.address}>")
    return " ".join(p for p in (escape(enquirer.name), address) if p) or "—"


def card(ticket: Any, desk: Desk, enquirer: Enquirer | None = None) -> tuple[str, list[dict[str, Any]]]:
    enquirer = enquirer or Enquirer()
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
    who_asked = _who(ticket.channel, enquirer)
    fields = [
        f"*Enquirer:* {who_asked}",
        f"*Organisation:* {escape(enquirer.organisation) or '—'}"
        + "".join(f" · {escape(standard)} _{escape(stage.replace('_', ' '))}_" for standard, stage in enquirer.stages),
        f"*Type:* {label('type')}" + (" ⚑ needs triage" if ticket.needs_triage else ""),
        f"*Sector:* {label('sector')}",
        f"*Language:* {label('language')}",
        f"*Channel:* {ticket.channel}",
        f"*Assignee:* {who}",
        f"*First response due:* {due:%Y-%m-%d %H:%M} UTC" if due else "*First response due:* —",
        f"*Priority:* {ticket.priority}",
        f"*Status:* {status}",
    ]
    text = f"{number} · {escape(ticket.subject[:150])} · {ticket.type} · {ticket.sector} · {ticket.status}"
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": f"{number} · {escaping.terminal_line(ticket.subject)[:120] or '(no subject)'}"[:150]}},
        *([{"type": "section", "text": {"type": "mrkdwn", "text": "> " + escape(enquirer.summary)}}] if enquirer.summary else []),
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f[:2000]} for f in fields]},
        *_documentation(ticket),
        *_engagement_hint(ticket, desk, enquirer),
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"routed by rule *{ticket.routing_rule}* to {ticket.team} · "
                                                                   "reply in this thread to answer the enquirer; start with `note:` to keep it internal"}]},
        actions(ticket, desk),
    ]
    return text, blocks


def _engagement_hint(ticket: Any, desk: Desk, enquirer: Enquirer) -> list[dict[str, Any]]:
    """A ticket of a type that usually leads to an engagement says so; staff decide (nothing is created)."""
    kind = desk.config.implementations.suggest.get(ticket.type)
    if kind is None or not enquirer.domain:
        return []
    command = f"helpdesk engagement add {enquirer.domain} --kind {kind} --ticket {desk.prefix}-{ticket.id}"
    return [{"type": "context", "elements": [{"type": "mrkdwn", "text": f"💡 may lead to a *{kind.replace('_', ' ')}* for "
                                                                       f"{escape(enquirer.domain)}: `{escape(command)}`"}]}]


def _documentation(ticket: Any) -> list[dict[str, Any]]:
    """The top documentation suggestions (links), or a note that nothing matched: a possible gap."""
    found = [s for s in (getattr(ticket, "suggestions", None) or []) if isinstance(s, dict) and str(s.get("url", "")).startswith(("https://", "http://"))]
    if found:
        links = " · ".join(f"<{s['url'].replace('|', '%7C').replace('>', '%3E')}|{escape(str(s.get('title') or s['url']))[:80]}>" for s in found[:3])
        return [{"type": "context", "elements": [{"type": "mrkdwn", "text": f"📚 *Docs:* {links}"[:2900]}]}]
    if getattr(ticket, "docs_gap", None):
        return [{"type": "context", "elements": [{"type": "mrkdwn", "text": "📚 no documentation page matched: a possible gap"}]}]
    return []


def actions(ticket: Any, desk: Desk) -> dict[str, Any]:
    """The card's controls: Claim, Assign to…, Reclassify (type, sector), Resolve / Reopen."""
    team = desk.team(ticket.team)
    ticket_id = str(ticket.id)

    def option(text: str, value: str) -> dict[str, Any]:
        return {"text": {"type": "plain_text", "text": text[:75]}, "value": f"{ticket_id}:{value}"}

    elements: list[dict[str, Any]] = [
        {"type": "button", "action_id": "claim", "text": {"type": "plain_text", "text": "Claim"}, "value": ticket_id, "style": "primary"},
    ]
    if team is not None and team.members:
        elements.append({"type": "static_select", "action_id": "assign", "placeholder": {"type": "plain_text", "text": "Assign to…"},
                         "options": [option(m.name, m.key) for m in team.members][:100]})
    elements.append({"type": "static_select", "action_id": "reclassify_type", "placeholder": {"type": "plain_text", "text": "Type…"},
                     "options": [option(t, t) for t in desk.config.taxonomy.types][:100]})
    elements.append({"type": "static_select", "action_id": "reclassify_sector", "placeholder": {"type": "plain_text", "text": "Sector…"},
                     "options": [option(s.replace("_", " "), s) for s in desk.config.taxonomy.sectors][:100]})
    canned = desk.config.templates.canned
    if canned:
        elements.append({"type": "static_select", "action_id": "canned", "placeholder": {"type": "plain_text", "text": "Canned reply…"},
                         "options": [option(entry.title, name) for name, entry in canned.items()][:100],
                         "confirm": {"title": {"type": "plain_text", "text": "Send to the enquirer?"},
                                     "text": {"type": "plain_text", "text": "The canned reply, filled in for this ticket, goes to the enquirer now."},
                                     "confirm": {"type": "plain_text", "text": "Send"}, "deny": {"type": "plain_text", "text": "Cancel"}}})
    if ticket.status == "resolved":
        elements.append({"type": "button", "action_id": "reopen", "text": {"type": "plain_text", "text": "Reopen"}, "value": ticket_id})
    else:
        elements.append({"type": "button", "action_id": "resolve", "text": {"type": "plain_text", "text": "Resolve"}, "value": ticket_id,
                         "style": "danger"})
    return {"type": "actions", "block_id": f"ticket:{ticket_id}", "elements": elements}


def organisation_card(detail: Any, suggestions: list[Any], prefix: str, open_limit: int = 10) -> tuple[str, list[dict[str, Any]]]:
    """An organisation as staff see it in Slack (``/helpdesk org DOMAIN``): stage, open tickets, engagements."""
    org = detail.organisation
    title = escape(org.name or org.domain)
    stages = " · ".join(f"{escape(i.standard)} *{escape(i.stage.replace('_', ' '))}* since {i.stage_since:%Y-%m-%d}"
                        for i in detail.implementations) or "no implementation recorded"
    open_tickets = [t for t in detail.tickets if t.status in ("new", "open", "pending")]
    lines = [f"• {prefix}-{t.id} {escape(t.subject[:80])} ({t.type}, {t.status})" for t in open_tickets[:open_limit]]
    engagements = [f"• #{e.id} {e.kind.replace('_', ' ')} — {e.status}, {e.hours:g} h" for e in detail.engagements[:10]]
    hints = [f"💡 {prefix}-{s.ticket.id} may lead to a *{s.kind.replace('_', ' ')}*" for s in suggestions[:5]]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}* ({escape(', '.join(org.domains))}) · "
                                                               f"{escape(org.sector or 'unknown')} · {escape(org.country or '—')}\n{stages}"[:2900]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": (f"*Open tickets ({len(open_tickets)})*\n" + "\n".join(lines)
                                                                if lines else "No open tickets.")[:2900]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": (f"*Engagements ({len(detail.engagements)})*\n" + "\n".join(engagements)
                                                                if engagements else "No engagements yet.")[:2900]}},
    ]
    if hints:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": "\n".join(hints)[:2900]}]})
    return f"{org.name or org.domain}: {stages}", blocks
