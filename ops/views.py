"""Tables and JSON for `helpdesk tickets` and `helpdesk report`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ops.runtime import Runtime
from storage import queries
from workers.escaping import terminal_line


def safe(value: Any) -> Text:
    """Text from outside as one plain table cell: no escape sequences, no rich markup (``[link=…]`` stays text)."""
    return Text(terminal_line("" if value is None else str(value)))


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
            "suggestions": row["suggestions"] or [],
            "docs_gap": row["docs_gap"],
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
            row["priority"], row["channel"], str(row["messages"]), safe(row["subject"]),
        )
    console.print(table)
    console.print("⚑ needs triage (type confidence below the threshold)")


def report_data(runtime: Runtime, since: datetime | None, until: datetime | None) -> dict[str, Any]:
    from storage.report import full_report  # noqa: PLC0415
    from storage.models import utcnow  # noqa: PLC0415

    until = _aware(until) or utcnow()
    with runtime.engine.connect().execution_options(readonly=True) as connection:
        data = full_report(connection, _aware(since), until)
    data["period"] = {"since": since, "until": until}
    data["stage_ladder"] = list(_stage_ladder(runtime))
    return data


def _stage_ladder(runtime: Runtime) -> tuple[str, ...]:
    from config.desk import load_desk  # noqa: PLC0415

    return load_desk(runtime.settings).implementations.stages


def write_csv(data: dict[str, Any], folder: "Path") -> list["Path"]:
    """One CSV per section, in long format (month, dimension, value, tickets …) for spreadsheets."""
    import csv  # noqa: PLC0415

    folder.mkdir(parents=True, exist_ok=True)
    written = []

    def table(name: str, header: list[str], rows: list[list[Any]]) -> None:
        path = folder / f"{name}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)
        written.append(path)

    table("summary", ["measure", "value"], [[k, data[k]] for k in ("tickets", "messages", "duplicates", "threaded", "automated", "quarantined", "needs_triage",
                                                                          "docs_gaps")])
    table("by_month", ["dimension", "month", "value", "tickets"],
          [[d, m, v, n] for d, months in data["by_month"].items() for m, values in sorted(months.items()) for v, n in sorted(values.items())])
    table("times", ["measure", "median_hours", "p90_hours", "n"],
          [[k, v["median"], v["p90"], v["n"]] for k, v in data["times"].items() if isinstance(v, dict)])
    table("sla", ["measure", "value"], [[k, v] for k, v in data["times"].items() if not isinstance(v, dict)])
    table("backlog", ["measure", "value"], list(map(list, data["backlog"].items())))
    table("enquirers", ["measure", "value"], list(map(list, data["enquirers"].items())))
    table("organisations", ["domain", "name", "sector", "tickets"], [[o["domain"], o["name"], o["sector"], o["tickets"]] for o in data["top_organisations"]])
    engagements = data["engagements"]
    table("engagements", ["month", "kind", "sector", "count", "hours"],
          [["", k, s, v["count"], v["hours"]] for k, sectors in sorted(engagements["by_kind_sector"].items()) for s, v in sorted(sectors.items())]
          + [[m, k, "", v["count"], v["hours"]] for m, kinds in engagements["by_month"].items() for k, v in sorted(kinds.items())])
    table("implementations", ["standard", "stage", "organisations_at_end", "reached_in_period"],
          [[std, stage, data["implementations"].get(std, {}).get(stage, 0), data["stage_changes"].get(std, {}).get(stage, 0)]
           for std in sorted({*data["implementations"], *data["stage_changes"]})
           for stage in sorted({*data["implementations"].get(std, {}), *data["stage_changes"].get(std, {})})])
    return written


def _aware(value: datetime | None) -> datetime | None:
    from datetime import timezone  # noqa: PLC0415

    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


def render_report(console: Console, data: dict[str, Any]) -> None:
    period = data.get("period", {})
    console.rule(f"Management information · {period.get('since') or 'all time'} → {period.get('until')}")
    totals = Table(title="Intake", title_justify="left")
    for column in ("tickets", "messages", "duplicates", "threaded", "automated", "quarantined", "needs triage", "docs gaps"):
        totals.add_column(column, justify="right")
    totals.add_row(*(str(data.get(k, 0)) for k in ("tickets", "messages", "duplicates", "threaded", "automated", "quarantined", "needs_triage",
                                                   "docs_gaps")))
    console.print(totals)
    render_matrix(console, "Tickets by type × sector", data["type_by_sector"])
    if "by_month" in data:
        for dimension in ("type", "sector", "channel", "language", "team"):
            render_by_month(console, dimension, data["by_month"][dimension])
        render_times(console, data["times"])
        render_pairs(console, "Backlog at the end of the period", data["backlog"])
        render_pairs(console, "Enquirers", data["enquirers"])
        orgs = Table(title="Top organisations", title_justify="left")
        for column in ("organisation", "sector", "tickets"):
            orgs.add_column(column, justify="right" if column == "tickets" else "left")
        for org in data["top_organisations"]:
            orgs.add_row(safe(org["name"] or org["domain"]), org["sector"] or "—", str(org["tickets"]))
        console.print(orgs)
        render_engagements(console, data["engagements"])
        render_funnel(console, data["implementations"], data["stage_changes"], data.get("stage_ladder", ()))


def render_engagements(console: Console, engagements: dict[str, Any]) -> None:
    """Engagements requested in the period by kind, with hours, and by sector."""
    sectors = sorted({s for row in engagements["by_kind_sector"].values() for s in row})
    table = Table(title=f"Engagements ({engagements['count']}, {engagements['hours']:g} h; delivered "
                        f"{engagements['delivered']['count']})", title_justify="left")
    table.add_column("kind")
    table.add_column("count", justify="right")
    table.add_column("hours", justify="right")
    for sector in sectors:
        table.add_column(sector.replace("_", " "), justify="right")
    for kind, totals in engagements["by_kind"].items():
        row = engagements["by_kind_sector"].get(kind, {})
        table.add_row(kind.replace("_", " "), str(totals["count"]), f"{totals['hours']:g}", *(str(row.get(s, {}).get("count", "")) for s in sectors))
    console.print(table if engagements["by_kind"] else "Engagements: none in the period")


def render_funnel(console: Console, implementations: dict[str, dict[str, int]], reached: dict[str, dict[str, int]],
                  ladder: "tuple[str, ...] | list[str]" = ()) -> None:
    """Where implementations stand at the end of the period, and how many reached each stage in it."""
    table = Table(title="Implementations by stage", title_justify="left")
    for column in ("standard", "stage", "at the end", "reached in period"):
        table.add_column(column, justify="right" if column in ("at the end", "reached in period") else "left")
    for standard in sorted({*implementations, *reached}):
        stages = {*implementations.get(standard, {}), *reached.get(standard, {})}
        for stage in sorted(stages, key=lambda st: (list(ladder).index(st) if st in ladder else len(ladder), st)):
            table.add_row(standard, stage.replace("_", " "), str(implementations.get(standard, {}).get(stage, 0)),
                          str(reached.get(standard, {}).get(stage, 0)))
    console.print(table if implementations or reached else "Implementations: none recorded")


def render_by_month(console: Console, dimension: str, months: dict[str, dict[str, int]]) -> None:
    values = sorted({v for counts in months.values() for v in counts}, key=lambda v: -sum(m.get(v, 0) for m in months.values()))
    table = Table(title=f"Tickets by month × {dimension}", title_justify="left")
    table.add_column("month")
    for value in values:
        table.add_column(value.replace("_", " "), justify="right")
    table.add_column("total", justify="right", style="bold")
    for month in sorted(months):
        counts = months[month]
        table.add_row(month, *(str(counts.get(v, "")) for v in values), str(sum(counts.values())))
    console.print(table)


def render_times(console: Console, times: dict[str, Any]) -> None:
    table = Table(title="Response and resolution (hours)", title_justify="left")
    for column in ("measure", "median", "p90", "tickets measured"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for name, value in times.items():
        if isinstance(value, dict):
            table.add_row(name.replace("_", " "), _fmt(value["median"]), _fmt(value["p90"]), str(value["n"]))
    console.print(table)
    console.print(f"SLA met: first response {_fmt(times['sla_first_response_met_pct'])} %, resolution "
                  f"{_fmt(times['sla_resolution_met_pct'])} % · reopened (counted apart): {times['reopened']}")


def render_pairs(console: Console, title: str, values: dict[str, Any]) -> None:
    table = Table(title=title, title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in values.items():
        table.add_row(key.replace("_", " "), _fmt(value))
    console.print(table)


def _fmt(value: Any) -> str:
    return "—" if value is None else (f"{value:,.1f}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else str(value))


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
