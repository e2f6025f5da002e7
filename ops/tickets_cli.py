"""Tickets at the command line: list them, see one whole, and work them — claim, assign, reply, note, reclassify,
set pending, resolve, reopen — through the same desk operations and permission rules as Slack
(``workers.desk.ticket_actions.TicketActions``). ``--by`` names who acts (default ``HELPDESK_STAFF``);
a refusal changes nothing, is audited, and exits 1 with the reason.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from ops.runtime import Runtime
from ops.shared_cli import ByOption, ColumnsOption, JsonFlag, WideFlag, console, dump, err, settings, ticket_number

if TYPE_CHECKING:
    from workers.desk.ticket_actions import Outcome, TicketActions

TicketArg = Annotated[str, typer.Argument(metavar="HD-N", help="Ticket number, e.g. HD-123.")]
Action = Callable[["TicketActions", "str | None", int, str], "Outcome"]


def register(app: typer.Typer) -> None:
    app.command()(tickets)
    app.command()(show)
    for name in SIMPLE_ACTIONS:
        app.command(name)(_simple_action(name))
    app.command()(assign)
    app.command()(note)
    app.command()(reclassify)
    app.command()(reply)


# -- reading ------------------------------------------------------------------------------------
def tickets(
    as_json: JsonFlag = False,
    limit: Annotated[int | None, typer.Option(metavar="N", help="Newest N tickets only.")] = None,
    team: Annotated[str | None, typer.Option(metavar="KEY", help="Only this team's tickets.")] = None,
    assignee: Annotated[str | None, typer.Option(metavar="KEY", help="Only tickets assigned to this member.")] = None,
    status: Annotated[str | None, typer.Option(metavar="STATUS", help="Only these statuses (new, open, pending, resolved; comma-separated).")] = None,
    breached: Annotated[bool, typer.Option("--breached", help="Only tickets that missed an SLA target.")] = False,
    needs_triage: Annotated[bool, typer.Option("--needs-triage", help="Only tickets whose type confidence is below the threshold.")] = False,
    wide: WideFlag = False,
    columns: ColumnsOption = None,
) -> None:
    """One row per ticket: number, status, next SLA due time, subject, type, assignee … (fitted to the terminal; --json for everything)."""
    from ops.tables import Shape  # noqa: PLC0415
    from ops.views import render_tickets, ticket_rows  # noqa: PLC0415
    from storage.queries import TicketFilter  # noqa: PLC0415

    statuses = tuple(s.strip() for s in (status or "").split(",") if s.strip())
    where = TicketFilter(team=team, assignee=assignee, statuses=statuses, breached=breached, needs_triage=needs_triage)
    with Runtime(settings()) as runtime:
        rows = ticket_rows(runtime, limit, where)
    if as_json:
        dump(rows)
    else:
        render_tickets(console, rows, Shape.parse(wide, columns))


def show(ticket: TicketArg, as_json: JsonFlag = False) -> None:
    """One ticket whole: conversation on every channel, classification and routing reasons, SLA clocks, history, other open tickets."""
    from ops.views import render_ticket  # noqa: PLC0415

    s = settings()
    ticket_id = ticket_number(ticket, s.ticket_prefix)
    with Runtime(s) as runtime:
        found = ticket_view(runtime, ticket_id)
    if found is None:
        err.print(f"[red]there is no {s.ticket_prefix}-{ticket_id}[/red]")
        raise typer.Exit(1)
    detail, others = found
    if as_json:
        dump(detail | {"other_open_tickets": [o["number"] for o in others]})
    else:
        render_ticket(console, detail, others)


def ticket_view(runtime: Runtime, ticket_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """The ticket as `show` prints it, and the other open tickets of the same person (on any channel)."""
    from ops.views import OPEN_STATUSES, _desk, ticket_row  # noqa: PLC0415
    from storage import contacts, queries  # noqa: PLC0415
    from storage.models import utcnow  # noqa: PLC0415

    now, desk = utcnow(), _desk(runtime)
    with runtime.engine.connect().execution_options(readonly=True) as c:
        detail = queries.ticket_detail(c, ticket_id, now)
        if detail is None:
            return None
        others: list[dict[str, Any]] = []
        if detail["contact_id"] is not None:
            where = queries.TicketFilter(statuses=OPEN_STATUSES, contact_ids=contacts.related(c, detail["contact_id"]), exclude_ticket=ticket_id)
            others = queries.list_tickets(c, None, where, now)
    view = ticket_row(detail, desk, now) | {"conversation": detail["conversation"], "events": detail["events"]}
    return view, [ticket_row(o, desk, now) for o in others]


# -- working a ticket -------------------------------------------------------------------------------
def run_action(ticket: str, by: str | None, action: Action) -> tuple["Outcome", str]:
    """Do ``action`` as ``by`` (or HELPDESK_STAFF) and enqueue its effects; the outcome and the ticket's number.
    A refusal, an unknown ticket or an invalid choice exits 1 with the reason."""
    from config.desk import load_desk  # noqa: PLC0415
    from config.queues import enqueue_effect  # noqa: PLC0415
    from workers.desk.operations import Desk  # noqa: PLC0415
    from workers.errors import Forbidden# noqa: PLC0415
    from workers.desk.ticket_actions import TicketActions  # noqa: PLC0415

    s = settings()
    ticket_id = ticket_number(ticket, s.ticket_prefix)
    with Runtime(s) as runtime:
        actions = TicketActions(runtime.engine, Desk(load_desk(s), s.ticket_prefix), surface="cli")
        try:
            outcome = action(actions, by or s.staff, ticket_id, f"cli:{uuid.uuid4().hex}")
        except Forbidden as exc:
            hint = "" if by or s.staff else " (give --by, or set HELPDESK_STAFF)"
            err.print(f"[red]refused:[/red] {escape(exc.reason)}{hint}")
            raise typer.Exit(1) from exc
        for effect in outcome.effects:
            enqueue_effect(runtime.broker, effect)
    number = f"{s.ticket_prefix}-{ticket_id}"
    if outcome.status == "unknown_ticket":
        err.print(f"[red]there is no {number}[/red]")
        raise typer.Exit(1)
    if outcome.status == "invalid":
        err.print(f"[red]{escape(outcome.detail)}[/red]")
        raise typer.Exit(1)
    return outcome, number


def _said(result: tuple["Outcome", str], done: str, unchanged: str) -> None:
    """Print what happened: ``done`` or ``unchanged``, with ``{n}`` the ticket's number and ``{o}`` the outcome."""
    outcome, number = result
    console.print(escape((done if outcome.done else unchanged).format(n=number, o=outcome)))


# The actions that take only the ticket: what each does, what it prints done, and unchanged.
SIMPLE_ACTIONS = {
    "claim": ("Take a ticket: it is assigned to you.", "{n} claimed", "{n}: unchanged (already assigned to you)"),
    "pending": ("Waiting on the enquirer: the SLA clock pauses until they answer or the ticket is reopened.",
                "{n} is pending: the SLA clock is paused until the enquirer answers", "{n}: unchanged (already pending)"),
    "resolve": ("Close a ticket as answered.", "{n} resolved", "{n}: unchanged (already resolved)"),
    "reopen": ("Open a resolved or pending ticket again (the SLA clock runs again).", "{n} reopened", "{n}: unchanged (already open)"),
}


def _simple_action(name: str) -> Callable[..., None]:
    help_text, done, unchanged = SIMPLE_ACTIONS[name]

    def command(ticket: TicketArg, by: ByOption = None) -> None:
        _said(run_action(ticket, by, lambda a, who, t, key: getattr(a, name)(who, t, key=key)), done, unchanged)

    command.__name__ = command.__qualname__ = name
    command.__doc__ = help_text
    return command


def assign(ticket: TicketArg, member: Annotated[str, typer.Argument(metavar="KEY", help="The member to pass it to (a key of teams.yaml).")],
           by: ByOption = None) -> None:
    """Pass a ticket to a colleague (assigning it to yourself is claiming it)."""
    result = run_action(ticket, by, lambda a, who, t, key: a.assign(who, t, member, key=key))
    _said(result, f"{{n}} assigned to {member}", f"{{n}}: unchanged (already assigned to {member})")


def note(ticket: TicketArg, text: Annotated[str, typer.Argument(metavar="TEXT", help="The note (never sent to the enquirer).")],
         by: ByOption = None) -> None:
    """Add an internal note to a ticket: staff see it, the enquirer never does."""
    result = run_action(ticket, by, lambda a, who, t, key: a.note(who, t, text, key=key))
    _said(result, "note added to {n} (message {o.message_id})", "{n}: unchanged (note already added)")


def reclassify(
    ticket: TicketArg,
    by: ByOption = None,
    type_: Annotated[str | None, typer.Option("--type", metavar="TYPE", help="The right enquiry type.")] = None,
    sector: Annotated[str | None, typer.Option(metavar="SECTOR", help="The right sector.")] = None,
) -> None:
    """Correct a ticket's type and/or sector; the correction becomes training data."""
    if type_ is None and sector is None:
        err.print("give --type and/or --sector")
        raise typer.Exit(2)
    for field, value in (("type", type_), ("sector", sector)):
        if value is None:
            continue
        result = run_action(ticket, by, lambda a, who, t, key, f=field, v=value: a.reclassify(who, t, f, v, key=key))  # type: ignore[misc]
        _said(result, f"{{n}} {field}: {{o.detail}}", f"{{n}} {field}: unchanged ({value})")


def reply(
    ticket: Annotated[str | None, typer.Argument(metavar="HD-N", help="Ticket number, e.g. HD-123.")] = None,
    text: Annotated[str | None, typer.Argument(metavar="TEXT", help="The reply (or use --canned, or --file).")] = None,
    by: ByOption = None,
    canned: Annotated[str | None, typer.Option(metavar="NAME", help="Send this canned reply of templates.yaml, filled in for the ticket.")] = None,
    file: Annotated[Path | None, typer.Option(metavar="FILE", help="Read the reply from this file ('-' for standard input).")] = None,
    note_: Annotated[bool, typer.Option("--note", help="An internal note: never sent to the enquirer.")] = False,
    with_docs: Annotated[bool, typer.Option("--with-docs", help="Append the ticket's documentation suggestions.")] = False,
    list_canned: Annotated[bool, typer.Option("--list-canned", help="List the canned replies.")] = False,
    send_queued: Annotated[bool, typer.Option("--send-queued", help="Send replies held while their channel had no sender.")] = False,
    resend: Annotated[int | None, typer.Option(metavar="ID", help="Queue a failed reply (by message id) once more.")] = None,
) -> None:
    """Answer a ticket's enquirer on their own channel (sent by the worker), or add an internal note."""
    if list_canned:
        _list_canned()
        return
    if send_queued or resend is not None:
        _release(send_queued, resend)
        return
    if ticket is None:
        err.print("give a ticket number (or --list-canned, --send-queued, --resend ID)")
        raise typer.Exit(2)
    body = None if canned is not None and not with_docs else _reply_body(ticket, text, file, canned, by, with_docs)
    if body is not None and not body.strip():
        err.print("[red]the reply is empty[/red]")
        raise typer.Exit(2)

    def act(a: "TicketActions", who: str | None, t: int, key: str) -> "Outcome":
        if body is None:
            return a.canned(who, t, canned or "", key=key)
        return a.note(who, t, body, key=key) if note_ else a.reply(who, t, body, key=key)

    result = run_action(ticket, by, act)
    what = "note added to" if note_ else "reply queued on"
    _said(result, f"{what} {{n}} (message {{o.message_id}})", "{n}: unchanged (already sent)")


def _reply_body(ticket: str, text: str | None, file: Path | None, canned: str | None, by: str | None, with_docs: bool) -> str:
    from types import SimpleNamespace  # noqa: PLC0415

    from config.desk import load_desk  # noqa: PLC0415
    from storage import queries  # noqa: PLC0415
    from workers.desk.operations import Desk  # noqa: PLC0415
    from workers.desk.replies import render_canned, suggestions_text  # noqa: PLC0415

    if canned is None:
        body = sys.stdin.read() if file is not None and str(file) == "-" else file.read_text(encoding="utf-8") if file else text or ""
        if not with_docs:
            return body
    s = settings()
    ticket_id = ticket_number(ticket, s.ticket_prefix)
    desk = Desk(load_desk(s), s.ticket_prefix)
    with Runtime(s) as runtime:
        try:
            body = render_canned(runtime.engine, desk, ticket_id, canned, agent=by or s.staff) if canned else body
        except LookupError as exc:
            err.print(f"[red]{escape(str(exc))}[/red]")
            raise typer.Exit(1) from exc
        with runtime.engine.connect() as c:
            rows = queries.list_tickets(c, only=ticket_id)
    suggestions = suggestions_text(SimpleNamespace(**rows[0]), desk.config.templates) if rows else ""
    return body.rstrip() + "\n" + suggestions


def _list_canned() -> None:
    from config.desk import load_desk  # noqa: PLC0415
    from ops import tables  # noqa: PLC0415

    templates = load_desk(settings()).templates
    columns = (tables.Column("name"), tables.Column("title", priority=1, flexible=True, min_width=20), tables.Column("languages", priority=2))
    tables.show(console, "Canned replies", columns, [[name, e.title, ", ".join(e.text)] for name, e in templates.canned.items()])


def _release(send_queued: bool, resend: int | None) -> None:
    from config.queues import enqueue_effect  # noqa: PLC0415
    from workers.desk.replies import resend as resend_message, send_queued as release_queued  # noqa: PLC0415

    with Runtime(settings()) as runtime:
        keys = release_queued(runtime.engine) if send_queued else [k for k in [resend_message(runtime.engine, resend or 0)] if k]
        for key in keys:
            enqueue_effect(runtime.broker, key)
    if resend is not None and not keys:
        err.print(f"[red]message {resend} is not a failed reply[/red]")
        raise typer.Exit(1)
    console.print(f"queued {len(keys)} repl{'y' if len(keys) == 1 else 'ies'} for sending")
