"""`helpdesk org …` and `helpdesk engagement …`: who implements the standard, at what stage, and what help they had.

``register(app)`` adds both groups; nothing is registered at import time. Every change goes
through the desk operations of ``workers.desk.knowledge`` (the same rules as Slack and the web).
"""

from __future__ import annotations

import csv
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ops.logs import command_settings as _settings
from ops.runtime import Runtime
from workers.outbound.escaping import terminal_line

console = Console()
err = Console(stderr=True)
CSV_COLUMNS = ("domain", "name", "sector", "country", "other_domains", "standard", "stage", "stage_since", "urls", "notes")

By = Annotated[str | None, typer.Option("--by", help="Who does it: a member key of the teams file (default: HELPDESK_STAFF).")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def register(app: typer.Typer) -> None:
    org_app = typer.Typer(no_args_is_help=True, help="Organisations: their implementations of the standard, stages, people, history.")
    engagement_app = typer.Typer(no_args_is_help=True, help="Engagements: scoping notes, mapping reviews, trainings … with effort.")
    app.add_typer(org_app, name="org")
    app.add_typer(engagement_app, name="engagement")
    _org_commands(org_app)
    _engagement_commands(engagement_app)


def _knowledge(runtime: Runtime) -> Any:
    from config.desk import load_desk  # noqa: PLC0415
    from workers.desk.knowledge import Knowledge  # noqa: PLC0415

    return Knowledge(runtime.engine, load_desk(runtime.settings))


def _run(action: Any) -> Any:
    """Run a desk operation; a refusal is printed and exits 1 (nothing was changed)."""
    from workers.errors import Refused# noqa: PLC0415

    try:
        return action()
    except Refused as exc:
        err.print(Text(f"refused: {exc}", style="red"))
        raise typer.Exit(1) from exc


def _org_commands(org_app: typer.Typer) -> None:
    @org_app.command("list")
    def org_list(
        stage: Annotated[str | None, typer.Option(help="Only organisations with an implementation at this stage.")] = None,
        standard: Annotated[str | None, typer.Option(help="Only organisations implementing this standard.")] = None,
        all_: Annotated[bool, typer.Option("--all", help="Also organisations known only from e-mail domains.")] = False,
        as_json: Json = False,
    ) -> None:
        """Organisations the desk knows, with their implementations, tickets and engagements."""
        from storage.knowledge import list_organisations  # noqa: PLC0415

        with Runtime(_settings()) as runtime:
            rows = list_organisations(runtime.engine, stage=stage, standard=standard, with_implementation_only=not all_)
        if as_json:
            _dump([{**r.organisation.to_dict(), "implementations": [i.to_dict() for i in r.implementations],
                    "tickets": r.tickets, "open_tickets": r.open_tickets, "engagements": r.engagements} for r in rows])
            return
        table = _table(f"Organisations ({len(rows)})", [("domain", 1), ("name", 3), ("sector", 4), ("stage", 2),
                                                         ("tickets", 5), ("open", 5), ("eng.", 5)])
        for r in rows:
            stages = ", ".join(f"{i.standard} {i.stage}" for i in r.implementations) or "—"
            table.add_row(_t(r.organisation.domain), _t(r.organisation.name or ""), _t(r.organisation.sector or "—"), _t(stages),
                          str(r.tickets), str(r.open_tickets), str(r.engagements))
        console.print(table)
        if not rows and not all_:
            console.print("No implementations recorded yet; `helpdesk org list --all` shows every organisation. "
                          "Record one with `helpdesk org set DOMAIN --standard ocds --stage scoping`.")

    @org_app.command("show")
    def org_show(domain: Annotated[str, typer.Argument(metavar="DOMAIN", help="Any of the organisation's domains.")], as_json: Json = False) -> None:
        """One organisation whole: implementations, people, tickets, engagements, and one timeline of them."""
        settings = _settings()
        with Runtime(settings) as runtime:
            knowledge = _knowledge(runtime)
            detail = _run(lambda: knowledge.organisation(domain))
            suggestions = knowledge.suggestions(detail)
        if as_json:
            _dump(_detail_json(detail, suggestions, settings.ticket_prefix))
            return
        _print_detail(detail, suggestions, settings.ticket_prefix)

    @org_app.command("set")
    def org_set(
        domain: Annotated[str, typer.Argument(metavar="DOMAIN", help="The organisation's domain (it is created if the desk does not know it).")],
        name: Annotated[str | None, typer.Option(help="Its name.")] = None,
        sector: Annotated[str | None, typer.Option(help="Its sector (a sector of the taxonomy).")] = None,
        country: Annotated[str | None, typer.Option(help="Two-letter ISO country code.")] = None,
        standard: Annotated[str | None, typer.Option(help="The standard of the implementation to set.")] = None,
        stage: Annotated[str | None, typer.Option(help="The implementation's stage (recorded with who and when).")] = None,
        url: Annotated[list[str] | None, typer.Option("--url", help="A publication or data URL (repeat).")] = None,
        notes: Annotated[str | None, typer.Option(help="Notes on the implementation.")] = None,
        add_domain: Annotated[list[str] | None, typer.Option("--add-domain", help="Another domain of the same organisation (repeat).")] = None,
        by: By = None,
    ) -> None:
        """Record what the desk knows of an organisation, and move its implementation to a stage."""
        settings = _settings()
        with Runtime(settings) as runtime:
            knowledge = _knowledge(runtime)
            change = _run(lambda: knowledge.set_organisation(
                domain, by=by or settings.staff, name=name, sector=sector, country=country, standard=standard, stage=stage,
                urls=tuple(url or ()), notes=notes, add_domains=tuple(add_domain or ())))
        org = change.organisation
        console.print(Text(f"{'created' if change.created else 'updated'} {org.domain}"
                           + (f" ({org.name})" if org.name else "")))
        if change.implementation is not None:
            impl = change.implementation
            verb = "now at" if change.stage_changed else "still at"
            console.print(Text(f"{impl.standard}: {verb} {impl.stage}"))

    @org_app.command("export")
    def org_export(out: Annotated[Path | None, typer.Option("--out", help="CSV file to write (default: standard output).")] = None) -> None:
        """Organisations and implementations as CSV (one row per implementation)."""
        from storage.knowledge import export_rows  # noqa: PLC0415

        with Runtime(_settings()) as runtime:
            rows = export_rows(runtime.engine)
        handle = out.open("w", newline="", encoding="utf-8") if out else sys.stdout
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        if out:
            handle.close()
            console.print(f"wrote {len(rows)} row(s) to {out}")

    @org_app.command("import")
    def org_import(
        file: Annotated[Path, typer.Argument(metavar="FILE", help="CSV with the columns of `org export` (domain required; the rest optional).")],
        by: By = None,
    ) -> None:
        """Create or update organisations and implementations from CSV; rows that break a rule are listed and skipped."""
        from workers.errors import Refused# noqa: PLC0415

        settings = _settings()
        try:
            rows = list(csv.DictReader(file.open(newline="", encoding="utf-8-sig")))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            err.print(Text(f"cannot read {file}: {exc}", style="red"))
            raise typer.Exit(2) from exc
        done, refused = 0, []
        with Runtime(settings) as runtime:
            knowledge = _knowledge(runtime)
            for number, row in enumerate(rows, start=2):
                try:
                    knowledge.set_organisation(
                        row.get("domain") or "", by=by or settings.staff, name=row.get("name") or None,
                        sector=row.get("sector") or None, country=row.get("country") or None,
                        standard=row.get("standard") or None, stage=row.get("stage") or None,
                        urls=tuple((row.get("urls") or "").split()), notes=row.get("notes") or None,
                        add_domains=tuple(d for d in (row.get("other_domains") or "").split(";") if d.strip()))
                    done += 1
                except Refused as exc:
                    refused.append((number, str(exc)))
        console.print(f"imported {done} row(s); refused {len(refused)}")
        for number, reason in refused[:50]:
            err.print(Text(f"  line {number}: {reason}", style="yellow"))
        if refused and not done:
            raise typer.Exit(1)


def _engagement_commands(engagement_app: typer.Typer) -> None:
    @engagement_app.command("add")
    def engagement_add(
        domain: Annotated[str, typer.Argument(metavar="DOMAIN", help="The organisation's domain.")],
        kind: Annotated[str, typer.Option("--kind", help="scoping_note, mapping_review, data_review, training … (config).")],
        hours: Annotated[float, typer.Option(help="Effort so far, in hours.")] = 0.0,
        by: By = None,
        owner: Annotated[str | None, typer.Option(help="Who does the work (default: --by).")] = None,
        ticket: Annotated[list[str] | None, typer.Option("--ticket", help="A ticket it came from, e.g. HD-12 (repeat).")] = None,
        link: Annotated[str | None, typer.Option(help="Link to the deliverable.")] = None,
        note: Annotated[str, typer.Option(help="What it is about.")] = "",
        status: Annotated[str, typer.Option(help="requested, in_progress or delivered.")] = "requested",
        key: Annotated[str | None, typer.Option(help="An idempotency key: the same key records the engagement once.")] = None,
    ) -> None:
        """Record work the desk does for an organisation."""
        settings = _settings()
        tickets = tuple(_ticket(t, settings.ticket_prefix) for t in ticket or ())
        with Runtime(settings) as runtime:
            knowledge = _knowledge(runtime)
            record, created = _run(lambda: knowledge.add_engagement(
                domain, kind, by=by or settings.staff, owner=owner, hours=hours, link=link, note=note, tickets=tickets,
                status=status, key=key))
        console.print(Text(f"{'recorded' if created else 'already recorded'}: engagement {record.id} — {record.kind} for "
                           f"{record.domain}, {record.status}, {record.hours:g} h"))

    @engagement_app.command("update")
    def engagement_update(
        engagement_id: Annotated[int, typer.Argument(metavar="ID", help="The engagement's number.")],
        status: Annotated[str | None, typer.Option(help="requested, in_progress, delivered or cancelled.")] = None,
        hours: Annotated[float | None, typer.Option(help="Total effort, in hours.")] = None,
        add_hours: Annotated[float | None, typer.Option("--add-hours", help="Add to the effort.")] = None,
        owner: Annotated[str | None, typer.Option(help="Who does the work.")] = None,
        link: Annotated[str | None, typer.Option(help="Link to the deliverable.")] = None,
        note: Annotated[str | None, typer.Option(help="Replace the note.")] = None,
        ticket: Annotated[list[str] | None, typer.Option("--ticket", help="A ticket it produced, e.g. HD-40 (repeat).")] = None,
        by: By = None,
    ) -> None:
        """Change an engagement's status, effort, owner, deliverable or tickets."""
        settings = _settings()
        tickets = tuple(_ticket(t, settings.ticket_prefix) for t in ticket or ())
        with Runtime(settings) as runtime:
            knowledge = _knowledge(runtime)
            record = _run(lambda: knowledge.update_engagement(
                engagement_id, by=by or settings.staff, status=status, hours=hours, add_hours=add_hours, owner=owner, link=link,
                note=note, tickets=tickets))
        console.print(Text(f"engagement {record.id} — {record.kind} for {record.domain}: {record.status}, {record.hours:g} h"))

    @engagement_app.command("list")
    def engagement_list(
        org: Annotated[str | None, typer.Option("--org", help="Only this organisation's (any of its domains).")] = None,
        kind: Annotated[str | None, typer.Option(help="Only this kind.")] = None,
        status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
        as_json: Json = False,
    ) -> None:
        """Engagements, newest first."""
        from storage.knowledge import find_organisation, list_engagements  # noqa: PLC0415

        settings = _settings()
        with Runtime(settings) as runtime:
            org_id = None
            if org is not None:
                found = find_organisation(runtime.engine, org.strip().lower())
                if found is None:
                    err.print(Text(f"no organisation with the domain {org!r}", style="red"))
                    raise typer.Exit(1)
                org_id = found.id
            rows = list_engagements(runtime.engine, org_id=org_id, kind=kind, status=status)
        if as_json:
            _dump([r.to_dict() for r in rows])
            return
        table = _table(f"Engagements ({len(rows)})", [("id", 1), ("organisation", 1), ("kind", 1), ("status", 1), ("hours", 2),
                                                      ("owner", 3), ("requested", 2), ("tickets", 4)])
        for r in rows:
            table.add_row(str(r.id), _t(r.domain), r.kind, r.status, f"{r.hours:g}", _t(r.owner or "—"), r.requested_at.date().isoformat(),
                          ", ".join(f"{settings.ticket_prefix}-{t}" for t, _ in r.tickets) or "—")
        console.print(table)


# -- printing ----------------------------------------------------------------------------------
def _print_detail(detail: Any, suggestions: list[Any], prefix: str) -> None:
    org = detail.organisation
    console.print(Text(f"{org.name or org.domain}", style="bold") + Text(
        f"  {', '.join(org.domains)} · sector {org.sector or 'unknown'} · country {org.country or '—'}"))
    impls = _table("Implementations", [("standard", 1), ("stage", 1), ("since", 1), ("urls", 3)])
    for i in detail.implementations:
        impls.add_row(i.standard, i.stage, i.stage_since.date().isoformat(), _t(" ".join(i.urls) or "—"))
    console.print(impls if detail.implementations else Text("No implementation recorded."))
    if detail.people:
        people = _table(f"People ({len(detail.people)})", [("name", 2), ("identities", 1)])
        for p in detail.people:
            people.add_row(_t(p.name or "—"), _t(", ".join(f"{ch}:{addr}" for ch, addr in p.identities)))
        console.print(people)
    if detail.engagements:
        eng = _table("Engagements", [("id", 1), ("kind", 1), ("status", 1), ("hours", 2), ("owner", 3)])
        for e in detail.engagements:
            eng.add_row(str(e.id), e.kind, e.status, f"{e.hours:g}", _t(e.owner or "—"))
        console.print(eng)
    for s in suggestions:
        console.print(Text(f"suggested: a {s.kind} for {prefix}-{s.ticket.id} ({s.ticket.type}: ") + _t(s.ticket.subject[:60])
                      + Text(f") — helpdesk engagement add {org.domain} --kind {s.kind} --ticket {prefix}-{s.ticket.id}"))
    timeline = _table("Timeline", [("when", 1), ("what", 1), ("detail", 2)])
    for entry in detail.timeline[:30]:
        ref = f"{prefix}-{entry.ref}" if entry.what.startswith("ticket") and entry.ref else (f"#{entry.ref}" if entry.ref else "")
        timeline.add_row(entry.at.strftime("%Y-%m-%d %H:%M"), entry.what.replace("_", " "), _t(f"{ref} {entry.detail}".strip()))
    console.print(timeline)


def _detail_json(detail: Any, suggestions: list[Any], prefix: str) -> dict[str, Any]:
    return {
        **detail.organisation.to_dict(),
        "implementations": [i.to_dict() for i in detail.implementations],
        "people": [{"name": p.name, "identities": [{"channel": c, "address": a} for c, a in p.identities]} for p in detail.people],
        "tickets": [{"ticket": f"{prefix}-{t.id}", "subject": t.subject, "type": t.type, "status": t.status, "channel": t.channel,
                     "created_at": t.created_at, "resolved_at": t.resolved_at} for t in detail.tickets],
        "engagements": [e.to_dict() for e in detail.engagements],
        "stage_changes": [{"standard": s.standard, "from": s.from_stage, "to": s.to_stage, "by": s.by, "at": s.at}
                          for s in detail.stage_changes],
        "suggested_engagements": [{"ticket": f"{prefix}-{s.ticket.id}", "kind": s.kind} for s in suggestions],
        "timeline": [e.to_dict() for e in detail.timeline],
    }


def _t(value: str) -> Text:
    """Untrusted text for the terminal: escape sequences and control characters removed, no markup."""
    return Text(terminal_line(value))


def _table(title: str, columns: list[tuple[str, int]]) -> Table:
    """A table whose first-priority columns never wrap (ids, domains, stages); the rest fold or shrink."""
    table = Table(title=title, title_justify="left")
    for name, priority in columns:
        table.add_column(name, no_wrap=priority <= 1, overflow="ellipsis" if priority > 1 else "fold",
                         justify="right" if name in ("tickets", "open", "eng.", "hours", "id") else "left")
    return table


def _ticket(text: str, prefix: str) -> int:
    cleaned = text.strip().upper().removeprefix(f"{prefix.upper()}-").removeprefix("#")
    if not cleaned.isdigit():
        err.print(Text(f"not a ticket number: {text}", style="red"))
        raise typer.Exit(2)
    return int(cleaned)


def _dump(data: Any) -> None:
    print(json.dumps(data, default=_json_default, ensure_ascii=False, indent=2))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
