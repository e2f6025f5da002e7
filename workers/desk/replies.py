"""Staff replies outside Slack's thread: canned texts, the ticket's variables, and (re)sending queued replies.

The same operations serve `helpdesk reply` and the card's *Canned reply…* menu.
A reply is only ever a message row plus its outbox row (``reply:<id>``); the
``effects`` actor sends it on the ticket's channel.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from storage import contacts, messages, tickets
from workers.outbound import escaping
from workers.desk.operations import Desk
from workers.errors import UnknownCanned

GREETING_FALLBACK = {"en": "there", "es": "cliente", "fr": "Madame, Monsieur", "pt": "cliente"}


def suggestions_text(ticket: Any, templates: Any) -> str:
    """The ticket's documentation suggestions as lines for a reply ("" when there are none)."""
    found = [s for s in (getattr(ticket, "suggestions", None) or []) if isinstance(s, dict) and s.get("url")]
    if not found:
        return ""
    heading = templates.pick(templates.suggestions_heading, ticket.language) or ""
    lines = "\n".join(f"- {s.get('title') or s['url']}: {s['url']}" for s in found[:3])
    return f"\n{heading}\n{lines}\n" if heading else f"\n{lines}\n"


def template_values(desk: Desk, ticket: Any, *, enquirer: str = "", agent: str | None = None) -> dict[str, str]:
    """The variables of acknowledgements and canned replies, for ``ticket``."""
    templates = desk.config.templates
    team = desk.team(ticket.team)
    first_name = escaping.first_name(enquirer)  # an untrusted display name is echoed only as one word of letters
    return {
        "enquirer_name": first_name or GREETING_FALLBACK.get(ticket.language, "there"),
        "ticket": f"{desk.prefix}-{ticket.id}",
        "subject": escaping.header(ticket.subject),
        "team": team.name if team is not None else ticket.team,
        "agent_name": desk.member_name(agent) if agent else "",
        "signature": templates.signature(ticket.team, ticket.language),
        "suggestions": suggestions_text(ticket, templates),
    }


def render_canned(engine: Engine, desk: Desk, ticket_id: int, name: str, *, agent: str | None) -> str:
    templates = desk.config.templates
    canned = templates.canned.get(name)
    if canned is None:
        raise UnknownCanned(f"no canned reply {name!r} (there are: {', '.join(templates.canned) or 'none'})")
    ticket = tickets.find(engine, ticket_id)
    if ticket is None:
        raise LookupError(f"there is no {desk.prefix}-{ticket_id}")
    enquirer = contacts.name_of(engine, ticket.contact_id)
    return templates.render(templates.pick(canned.text, ticket.language) or "", template_values(desk, ticket, enquirer=enquirer or "", agent=agent))


def send_queued(engine: Engine) -> list[str]:
    """Outbox keys of replies held because their channel could not send yet, made pending again."""
    return messages.requeue_held_replies(engine)


def resend(engine: Engine, message_id: int) -> str | None:
    """A failed reply (refused, or unconfirmed after a crash) queued once more — a person decided it did not arrive."""
    return messages.requeue_failed_reply(engine, message_id)
