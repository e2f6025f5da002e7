"""Tables and JSON for `helpdesk tickets` and `helpdesk report`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from ops.runtime import Runtime
from storage import queries


def ticket_rows(runtime: Runtime, limit: int | None = None) -> list[dict[str, Any]]:
    prefix = runtime.settings.ticket_prefix
    with runtime.engine.connect().execution_options(readonly=True) as connection:
        rows = queries.list_tickets(connection, limit)
    return [
        {
            "number": f"{prefix}-{row['id']}",
            "status": row["status"],
            "type": row["type"],
            "sector": row["sector"],
            "language": row["language"],
            "team": row["team"],
            "assignee": row["assignee"],
            "priority": row["priority"],
            "channel": row["channel"],
            "subject": row["subject"],
            "enquirer": row["contact_address"],
            "organisation": row["organisation"],
            "messages": row["messages"],
            "needs_triage": row["needs_triage"],
            "created_at": row["created_at"],
            "classification": row["classification"],
            "routing": row["routing"],
        }
        for row in rows
    ]


def render_tickets(console: Console, rows: list[dict[str, Any]]) -> None:
    table = Table(title=f"Tickets ({len(rows)})", title_justify="left")
    for column in ("number", "status", "type", "sector", "lang", "team", "assignee", "priority", "channel", "msgs", "subject"):
        table.add_column(column, overflow="ellipsis", no_wrap=column != "subject", max_width=48 if column == "subject" else None)
    for row in rows:
        kind = row["type"] + (" ⚑" if row["needs_triage"] else "")
        table.add_row(
            row["number"], row["status"], kind, row["sector"], row["language"], row["team"], row["assignee"] or "—",
            row["priority"], row["channel"], str(row["messages"]), row["subject"],
        )
    console.print(table)
    console.print("⚑ needs triage (type confidence below the threshold)")


def report_data(runtime: Runtime, since: datetime | None, until: datetime | None) -> dict[str, Any]:
    with runtime.engine.connect().execution_options(readonly=True) as connection:
        data = queries.summary(connection, _aware(since), _aware(until))
    data["period"] = {"since": since, "until": until}
    return data


def _aware(value: datetime | None) -> datetime | None:
    from datetime import timezone  # noqa: PLC0415

    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


def render_report(console: Console, data: dict[str, Any]) -> None:
    totals = Table(title="Intake", title_justify="left")
    for column in ("tickets", "messages", "duplicates", "threaded", "automated", "quarantined", "needs triage"):
        totals.add_column(column, justify="right")
    totals.add_row(*(str(data[k]) for k in ("tickets", "messages", "duplicates", "threaded", "automated", "quarantined", "needs_triage")))
    console.print(totals)
    render_matrix(console, "Tickets by type × sector", data["type_by_sector"])
    for key, title in (("by_team", "team"), ("by_channel", "channel"), ("by_language", "language")):
        console.print(_counts_table(title, data[key]))


def render_matrix(console: Console, title: str, matrix: dict[str, dict[str, int]]) -> None:
    sectors = sorted({s for row in matrix.values() for s in row})
    table = Table(title=title, title_justify="left")
    table.add_column("type")
    for sector in sectors:
        table.add_column(sector.replace("_", " "), justify="right")
    table.add_column("total", justify="right", style="bold")
    for etype in sorted(matrix, key=lambda t: -sum(matrix[t].values())):
        row = matrix[etype]
        table.add_row(etype, *(str(row.get(s, "")) for s in sectors), str(sum(row.values())))
    totals = [sum(matrix[t].get(s, 0) for t in matrix) for s in sectors]
    table.add_row("total", *(str(t) for t in totals), str(sum(totals)), style="bold")
    console.print(table)


def _counts_table(title: str, counts: dict[str, int]) -> Table:
    table = Table(title=f"Tickets by {title}", title_justify="left")
    table.add_column(title)
    table.add_column("tickets", justify="right")
    table.add_column("", min_width=20)
    top = max(counts.values(), default=1)
    for key, count in counts.items():
        table.add_row(key, str(count), "█" * max(1, round(20 * count / top)))
    return table
