"""`helpdesk contacts show|link`: one person across channels — their identities (e-mail, Slack, X) and tickets —
and two contacts that are the same person made one, with the link recorded."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from ops.runtime import Runtime
from ops.shared_cli import ByOption, ColumnsOption, JsonFlag, WideFlag, console, dump, err, settings

contacts_app = typer.Typer(no_args_is_help=True, help="People across channels: identities and tickets; link two contacts that are one person.")
Who = Annotated[str, typer.Argument(metavar="ADDRESS|@USER", help="An e-mail address, an X @username, a Slack user id, or contact:N.")]
# Linking two contacts that are one person: a desk action of its own (workers.desk.permissions).
LINK_RIGHT = "contact.link"


def register(app: typer.Typer) -> None:
    app.add_typer(contacts_app, name="contacts")


@contacts_app.command("show")
def contacts_show(who: Who, as_json: JsonFlag = False, wide: WideFlag = False, columns: ColumnsOption = None) -> None:
    """A person's identities on every channel and their tickets, newest first."""
    from ops.tables import Shape  # noqa: PLC0415
    from ops.views import _desk, render_contact, ticket_row  # noqa: PLC0415
    from storage import contacts, queries  # noqa: PLC0415
    from storage.models import utcnow  # noqa: PLC0415

    with Runtime(settings()) as runtime:
        now, desk = utcnow(), _desk(runtime)
        with runtime.engine.connect().execution_options(readonly=True) as c:
            contact = _find(c, who)
            found = contacts.get(c, contact)
            rows = queries.list_tickets(c, None, queries.TicketFilter(contact_ids=contacts.related(c, contact)), now)
    assert found is not None  # _find exits when there is no such contact
    person = _contact_dict(found)
    tickets = [ticket_row(r, desk, now) for r in rows]
    if as_json:
        dump(person | {"tickets": tickets})
    else:
        render_contact(console, person, tickets, Shape.parse(wide, columns))


def _find(c: Any, who: str) -> int:
    from storage import contacts  # noqa: PLC0415

    found = contacts.find(c, who)
    if found is None:
        err.print(f"[red]no contact {escape(who)}[/red]")
        raise typer.Exit(1)
    return found


def _contact_dict(contact: Any) -> dict[str, Any]:
    from storage.contacts import label  # noqa: PLC0415

    identities = [{"channel": i.channel, "address": i.address, "label": label(i.channel, i.address, contact.display_name)}
                  for i in contact.identities]
    return {"id": contact.id, "display_name": contact.display_name, "organisation": contact.organisation,
            "created_at": contact.created_at, "identities": identities, "merged": list(contact.merged)}


@contacts_app.command("link")
def contacts_link(
    first: Annotated[str, typer.Argument(metavar="A", help="The contact that stays (address, @username, Slack id or contact:N).")],
    second: Annotated[str, typer.Argument(metavar="B", help="The same person's other contact: its identities and tickets move to A.")],
    by: ByOption = None,
) -> None:
    """Make two contacts one person: B's identities, tickets and messages move to A; the link is recorded."""
    from storage import contacts  # noqa: PLC0415
    from storage.models import utcnow  # noqa: PLC0415

    s = settings()
    with Runtime(s) as runtime:
        actor = _authorised(runtime, by or s.staff, f"{first} {second}")
        with runtime.engine.connect() as c:
            into, other = _find(c, first), _find(c, second)
        merged = contacts.merge(runtime.engine, into, other, by=actor, surface="cli", at=utcnow())
    if not merged.linked:
        console.print(f"unchanged: {escape(first)} and {escape(second)} are one contact already (contact {into})")
        return
    console.print(f"linked: contact {other} is now part of contact {into} ({merged.identities} identities, {merged.tickets} tickets moved)")


def _authorised(runtime: Runtime, by: str | None, target: str) -> str:
    """The key of whoever links, if their roles allow it; else the refusal is audited and the command exits 1."""
    import uuid  # noqa: PLC0415

    from config.desk import load_desk  # noqa: PLC0415
    from storage import audit  # noqa: PLC0415
    from workers.desk.permissions import Staff# noqa: PLC0415
    from workers.errors import Forbidden

    try:
        return Staff(load_desk(runtime.settings)).authorise(by, LINK_RIGHT).key
    except Forbidden as exc:
        audit.record(runtime.engine, f"refused:cli:{by}:contact.link:{uuid.uuid4().hex}", actor=by or "nobody", surface="cli",
                     action="contact.link", target=target, outcome="refused", detail={"reason": exc.reason})
        err.print(f"[red]refused:[/red] {escape(exc.reason)}")
        raise typer.Exit(1) from exc
