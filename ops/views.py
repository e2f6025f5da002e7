"""What `helpdesk tickets`, `show` and `contacts show` print: rows for JSON, and tables that fit the terminal.

Times are shown in UTC, and say so; every text that came from outside is escaped for the terminal.
"""

from __future__ import annotations

import functools
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

from rich.console import Console
from rich.text import Text

from ops import tables
from ops.runtime import Runtime
from workers.outbound.escaping import terminal, terminal_line

if TYPE_CHECKING:
    from config.desk import DeskConfig
    from storage.queries import TicketFilter
    from workers.desk.business_hours import BusinessCalendar

OPEN_STATUSES = ("new", "open", "pending")
MARKS = {"breached": ("✖", "red"), "at_risk": ("!", "yellow"), "paused": ("‖", "dim")}
LEGEND = "⚑ needs triage · SLA: ! at risk, ✖ breached, ‖ paused · times in UTC"


def safe(value: Any) -> Text:
    """Text from outside as one plain table cell: no escape sequences, no rich markup (``[link=…]`` stays text)."""
    return Text(terminal_line("" if value is None else str(value)))


def when(value: datetime | None, *, year: bool = True) -> str:
    """A time in UTC to the minute: ``2026-12-05 14:00`` (``Dec 05 14:00`` without the year, for narrow columns)."""
    if value is None:
        return "—"
    value = value.astimezone(timezone.utc)
    return f"{value:%Y-%m-%d %H:%M}" if year else f"{value:%b %d %H:%M}"


class RowDesk(Protocol):
    """What a ticket's row needs of the desk: ``workers.desk.operations.Desk`` has it, and so has ``DeskClocks``."""

    config: "DeskConfig"
    prefix: str

    def calendar(self, team_key: str) -> "BusinessCalendar": ...


class DeskClocks:
    """The desk's configuration, ticket prefix and teams' business calendars — what the SLA clocks of the rows read —
    without ``workers.desk.operations`` (the desk's changes and the storage modules they write with: a reading command
    needs none of them). A team's calendar is found as ``workers.desk.operations.Desk.calendar`` finds it: its own,
    else the default team's."""

    def __init__(self, config: "DeskConfig", ticket_prefix: str = "HD") -> None:
        self.config = config
        self.prefix = ticket_prefix

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one per command; calendars are immutable
    def calendar(self, team_key: str) -> "BusinessCalendar":
        from workers.desk.business_hours import BusinessCalendar  # noqa: PLC0415

        teams = self.config.teams.teams
        team = teams.get(team_key)
        return BusinessCalendar(team.calendar if team is not None else teams[self.config.routing.default.team].calendar)


def _desk(runtime: Runtime) -> DeskClocks:
    from config.desk import load_desk  # noqa: PLC0415

    return DeskClocks(load_desk(runtime.settings), runtime.settings.ticket_prefix)


def ticket_rows(runtime: Runtime, limit: int | None = None, where: "TicketFilter | None" = None) -> list[dict[str, Any]]:
    from storage import queries  # noqa: PLC0415
    from storage.db import reading  # noqa: PLC0415
    from storage.models import utcnow  # noqa: PLC0415

    now = utcnow()
    with reading(runtime.engine) as connection:
        rows = queries.list_tickets(connection, limit, where, now)
    desk = _desk(runtime)
    return [ticket_row(row, desk, now) for row in rows]


def ticket_row(row: dict[str, Any], desk: RowDesk, now: datetime) -> dict[str, Any]:
    """A ticket as `tickets --json` gives it, with its SLA clocks."""
    from storage.contacts import label  # noqa: PLC0415

    next_due, sla = sla_state(row, desk, now)
    return {
        "number": f"{desk.prefix}-{row['id']}",
        "status": row["status"],
        "type": row["type"],
        "sector": row["sector"],
        "language": row["language"],
        "team": row["team"],
        "assignee": row["assignee"],
        "priority": row["priority"],
        "channel": row["channel"],
        "subject": row["subject"],
        "enquirer": label(row["channel"], row["contact_address"], row["contact_name"]),
        "enquirer_name": row["contact_name"],
        "contact_id": row["contact_id"],
        "organisation": row["organisation"],
        "messages": row["messages"],
        "needs_triage": row["needs_triage"],
        "created_at": row["created_at"],
        "first_response_at": row["first_response_at"],
        "resolved_at": row["resolved_at"],
        "first_response_due_at": row["first_response_due_at"],
        "resolution_due_at": row["resolution_due_at"],
        "next_due_at": next_due,
        "sla": sla,
        "sla_breached": row["sla_breached"],
        "sla_paused": row["sla_paused_at"] is not None,
        "sla_paused_at": row["sla_paused_at"],
        "classification": row["classification"],
        "routing": row["routing"],
        "suggestions": row["suggestions"] or [],
        "docs_gap": row["docs_gap"],
    }


def sla_state(row: dict[str, Any], desk: RowDesk, now: datetime) -> tuple[datetime | None, str | None]:
    """The clock that runs next (first response until answered, then resolution) and how it stands:
    ``breached``, ``at_risk`` (past the desk's warning share), ``paused``, ``ok`` — or None without a target."""
    from workers.desk.sla import progress  # noqa: PLC0415

    if row["status"] not in OPEN_STATUSES:
        return None, "breached" if row["sla_breached"] else None
    due = row["first_response_due_at"] if row["first_response_at"] is None else row["resolution_due_at"]
    if row["sla_paused_at"] is not None:
        return due, "paused"
    if row["sla_breached"]:
        return due, "breached"
    if due is None:
        return None, None
    share = progress(row["created_at"], due, now, desk.calendar(row["team"]))
    return due, "at_risk" if share >= desk.config.sla.warn_at else "ok"


def due_cell(row: dict[str, Any]) -> Text:
    mark, style = MARKS.get(row.get("sla") or "", ("", ""))
    due = row.get("next_due_at")
    text = Text(when(due, year=False) if due is not None else "—")
    if mark:
        text.append(f" {mark}", style=style)
    return text


TICKET_COLUMNS = (
    tables.Column("number", "number"),
    tables.Column("status", "status"),
    tables.Column("due", "next due"),
    tables.Column("type", "type", priority=1),
    tables.Column("assignee", "assignee", priority=2),
    tables.Column("subject", "subject", priority=3, flexible=True, min_width=18),
    tables.Column("team", "team", priority=4),
    tables.Column("lang", "lang", priority=5),
    tables.Column("sector", "sector", priority=6),
    tables.Column("enquirer", "enquirer", priority=7),
    tables.Column("opened", "opened", priority=8),
    tables.Column("priority", "priority", priority=9),
    tables.Column("channel", "channel", priority=10),
    tables.Column("msgs", "msgs", priority=11, justify="right"),
)


def render_tickets(console: Console, rows: list[dict[str, Any]], shape: tables.Shape | None = None, *, title: str | None = None) -> None:
    cells = [
        [
            row["number"], row["status"], due_cell(row), row["type"] + (" ⚑" if row["needs_triage"] else ""), row["assignee"] or "—",
            safe(row["subject"]), row["team"], row["language"], row["sector"], safe(row.get("enquirer") or "")[:40],
            when(row.get("created_at"))[:10], row["priority"], row["channel"], str(row["messages"]),
        ]
        for row in rows
    ]
    tables.show(console, title or f"Tickets ({len(rows)})", TICKET_COLUMNS, cells, shape)
    console.print(Text(LEGEND, style="dim"))


# -- one ticket ---------------------------------------------------------------------------------
def render_ticket(console: Console, ticket: dict[str, Any], others: list[dict[str, Any]]) -> None:
    """`helpdesk show`: the ticket's facts, why it was classified and routed so, its SLA clocks, the conversation and history."""
    console.rule(Text(f"{ticket['number']} · {ticket['status']} · ", style="bold") + safe(ticket["subject"]), align="left")
    classification, routing = ticket.get("classification") or {}, ticket.get("routing") or {}
    from storage.contacts import x_handle  # noqa: PLC0415

    name = ticket["enquirer_name"]
    named = name and name not in ticket["enquirer"] and x_handle(name) is None  # an X label carries the name already
    facts = [
        ("enquirer", safe(ticket["enquirer"]) + Text(f" · {terminal_line(name)}" if named else "")),
        ("organisation", safe(ticket["organisation"] or "—")),
        ("opened", f"{when(ticket['created_at'])} UTC on {ticket['channel']}"),
        ("team", f"{ticket['team']} · assignee {ticket['assignee'] or '— (unassigned)'} · priority {ticket['priority']}"),
    ]
    for field in ("type", "sector", "language"):
        label = classification.get(field) or {}
        value = ticket[field] if field != "language" else ticket["language"]
        facts.append((field, safe(f"{value} ({label.get('confidence', '—')})" + (" ⚑ needs triage" if field == "type" and ticket["needs_triage"] else ""))))
        facts += [("", safe(f"  {reason}")) for reason in label.get("reasons", [])]
    facts.append(("routing", safe(f"rule {routing.get('rule') or '—'}")))
    facts += [("", safe(f"  {reason}")) for reason in routing.get("reasons", [])]
    facts += _sla_facts(ticket)
    for name, value in facts:
        console.print(Text(f"{name:>14}  ", style="bold") + (value if isinstance(value, Text) else Text(value)))
    _conversation(console, ticket.get("conversation", []))
    _history(console, ticket.get("events", []))
    if others:
        render_tickets(console, others, title=f"Other open tickets of this person ({len(others)})")


def _sla_facts(ticket: dict[str, Any]) -> list[tuple[str, Text | str]]:
    state = ticket.get("sla") or "no target"
    first = f"due {when(ticket['first_response_due_at'])}" + (f", answered {when(ticket['first_response_at'])}" if ticket["first_response_at"] else "")
    resolution = f"due {when(ticket['resolution_due_at'])}" + (f", resolved {when(ticket['resolved_at'])}" if ticket["resolved_at"] else "")
    paused = [("paused since", when(ticket["sla_paused_at"]) + " (waiting on the enquirer)")] if ticket["sla_paused"] else []
    mark, style = MARKS.get(state, ("", ""))
    return [("SLA", Text(f"{state.replace('_', ' ')} {mark}".strip(), style=style or "")),
            ("first response", first), ("resolution", resolution), *paused]


def _conversation(console: Console, messages: list[dict[str, Any]]) -> None:
    console.print(Text(f"Conversation ({len(messages)} messages, times in UTC)", style="bold"))
    for message in messages:
        arrow = "→" if message["direction"] == "out" else "←"
        who = message["author"] if message["direction"] == "out" else message["sender_name"] or message["sender_address"]
        status = f" · {message['status']}" if message.get("status") else ""
        # imported mail is received long after it was written: show when it was sent
        at = min(filter(None, (message.get("sent_at"), message["received_at"])))
        head = Text(f"{when(at)} {arrow} {message['channel']} · {message['kind']}{status} · ", style="cyan")
        console.print(head + safe(who))
        for line in terminal(message["text"] or "").strip().splitlines()[:40]:
            console.print(Text("    " + line))


def _history(console: Console, events: list[dict[str, Any]]) -> None:
    console.print(Text(f"History ({len(events)})", style="bold"))
    for event in events:
        data = event.get("data") or {}
        detail = ", ".join(f"{k} {v}" for k, v in data.items() if isinstance(v, (str, int, float)) and k not in ("key", "at"))
        console.print(Text(f"{when(event['at'])}  {event['kind'].replace('_', ' ')}", style="dim") + Text(": " if detail else "") + safe(detail))


# -- contacts -------------------------------------------------------------------------------------
def render_contact(console: Console, contact: dict[str, Any], tickets: list[dict[str, Any]], shape: tables.Shape | None = None) -> None:
    console.print(Text(f"contact {contact['id']}: ", style="bold") + safe(contact["display_name"] or "—")
                  + Text(f" · {contact['organisation'] or 'no organisation'} · first wrote {when(contact['created_at'])} UTC"))
    columns = (tables.Column("channel"), tables.Column("identity", priority=1, flexible=True, min_width=20))
    tables.show(console, f"Identities ({len(contact['identities'])})", columns,
                [[i["channel"], safe(i["label"])] for i in contact["identities"]], shape)
    if contact["merged"]:
        console.print(f"linked from contact(s) {', '.join(map(str, contact['merged']))}")
    render_tickets(console, tickets, shape, title=f"Tickets ({len(tickets)})")
