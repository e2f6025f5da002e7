"""`helpdesk report`: management information as tables that fit the terminal, JSON or CSV.

Without ``--by`` the whole report (intake counts, volumes by month, times, SLA, backlog,
enquirers, organisations, engagements, implementations); with ``--by type,sector,…`` one
count of the period's tickets by any combination of type, sector, channel, language, team,
organisation and month.
"""

from __future__ import annotations

import csv as csv_module
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from ops import tables
from ops.runtime import Runtime
from ops.shared_cli import JsonFlag, WideFlag, ColumnsOption, console, dump, err, settings
from ops.views import safe

NO_DATA = "no data"


def register(app: typer.Typer) -> None:
    app.command()(report)


def report(
    as_json: JsonFlag = False,
    since: Annotated[datetime | None, typer.Option(metavar="DATE", help="From this date (inclusive, UTC).")] = None,
    until: Annotated[datetime | None, typer.Option(metavar="DATE", help="Up to this date (exclusive, UTC); default now.")] = None,
    month: Annotated[str | None, typer.Option(metavar="YYYY-MM", help="One calendar month, e.g. 2026-10 (instead of --since/--until).")] = None,
    csv: Annotated[Path | None, typer.Option("--csv", metavar="DIR", help="Also write one CSV per section into this folder ('-': the --by table as CSV on standard output).")] = None,
    by: Annotated[str | None, typer.Option("--by", metavar="DIMENSIONS", help="Count tickets by any of type,sector,channel,language,team,organisation,month (comma-separated).")] = None,
    wide: WideFlag = False,
    columns: ColumnsOption = None,
) -> None:
    """Management information: volumes by month × type/sector/channel/language/team, times, SLA, backlog, enquirers (or --by any combination)."""
    from storage.report import GROUPINGS  # noqa: PLC0415

    if month is not None:
        since, until = _month_bounds(month)
    dimensions = tuple(d.strip() for d in (by or "").split(",") if d.strip())
    if by is not None and (not dimensions or any(d not in GROUPINGS for d in dimensions)):
        err.print(f"[red]--by takes one or more of {', '.join(GROUPINGS)}, comma-separated; not {by!r}[/red]")
        raise typer.Exit(2)
    if csv is not None and str(csv) == "-" and not dimensions:
        err.print("[red]--csv - (CSV on standard output) needs --by[/red]")
        raise typer.Exit(2)
    with Runtime(settings()) as runtime:
        data = grouped_data(runtime, dimensions, since, until) if dimensions else report_data(runtime, since, until)
    shape = tables.Shape.parse(wide, columns)
    if csv is not None:
        if dimensions:
            write_grouped_csv(data, sys.stdout if str(csv) == "-" else csv)
        else:
            written = write_csv(data, csv)
            err.print(f"wrote {len(written)} CSV files to {csv}")
        if str(csv) == "-":
            return
    if as_json:
        dump(data)
    elif dimensions:
        render_grouped(console, data, shape)
    else:
        render_report(console, data, shape)


def _month_bounds(month: str) -> tuple[datetime, datetime]:
    try:
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=timezone.utc)
    except ValueError as exc:
        err.print(f"[red]--month takes YYYY-MM, not {month!r}[/red]")
        raise typer.Exit(2) from exc
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


def _period(since: datetime | None, until: datetime | None) -> tuple[datetime | None, datetime]:
    from storage.models import utcnow  # noqa: PLC0415

    return _aware(since), _aware(until) or utcnow()


def report_data(runtime: Runtime, since: datetime | None, until: datetime | None) -> dict[str, Any]:
    from config.desk import load_desk  # noqa: PLC0415
    from storage.report import full_report  # noqa: PLC0415

    since, until = _period(since, until)
    with runtime.engine.connect().execution_options(readonly=True) as connection:
        data = full_report(connection, since, until)
    data["period"] = {"since": since, "until": until}
    data["stage_ladder"] = list(load_desk(runtime.settings).implementations.stages)
    return data


def grouped_data(runtime: Runtime, by: tuple[str, ...], since: datetime | None, until: datetime | None) -> dict[str, Any]:
    from storage.report import grouped  # noqa: PLC0415

    since, until = _period(since, until)
    with runtime.engine.connect().execution_options(readonly=True) as connection:
        rows = grouped(connection, by, since, until)
    return {"period": {"since": since, "until": until}, "by": list(by), "tickets": sum(r["tickets"] for r in rows), "rows": rows}


def period_title(period: dict[str, Any]) -> str:
    """``2026-11-01 to 2026-11-30 (UTC)``: dates only, the end inclusive, one time zone."""
    since, until = period.get("since"), period.get("until")
    start = f"{since.astimezone(timezone.utc):%Y-%m-%d}" if since else "all time"
    if until is None:
        return f"{start} to today (UTC)"
    until = until.astimezone(timezone.utc)
    last = until - timedelta(days=1) if until.time() == datetime.min.time() else until
    return f"{start} to {last:%Y-%m-%d} (UTC)"


# -- tables ---------------------------------------------------------------------------------------
def render_grouped(console: Console, data: dict[str, Any], shape: tables.Shape | None = None) -> None:
    console.print(Text(f"Tickets by {' × '.join(data['by'])} · {period_title(data['period'])}", style="bold"))
    columns = [tables.Column(name, name.replace("_", " ")) for name in data["by"]] + [tables.Column("tickets", justify="right")]
    rows = [[*(safe(row[name].replace("_", " ") if name != "organisation" else row[name]) for name in data["by"]), str(row["tickets"])]
            for row in data["rows"]]
    total = ["total", *([""] * (len(data["by"]) - 1)), str(data["tickets"])]
    tables.show(console, "", columns, rows, shape, footer=total)
    if not data["rows"]:
        console.print(NO_DATA + " in the period")


def render_report(console: Console, data: dict[str, Any], shape: tables.Shape | None = None) -> None:
    console.print(Text(f"Management information · {period_title(data.get('period', {}))}", style="bold"))
    render_pairs(console, "Intake", {k: data.get(k, 0) for k in ("tickets", "messages", "duplicates", "threaded", "automated", "quarantined",
                                                                 "needs_triage", "docs_gaps")}, shape)
    render_matrix(console, "Tickets by type × sector", data["type_by_sector"], shape)
    if "by_month" not in data:
        return
    for dimension in ("type", "sector", "channel", "language", "team"):
        render_by_month(console, dimension, data["by_month"][dimension], shape)
    render_times(console, data["times"], shape)
    render_pairs(console, "Backlog at the end of the period", data["backlog"], shape)
    render_pairs(console, "Enquirers", data["enquirers"], shape)
    columns = (tables.Column("organisation", flexible=True, min_width=20, priority=1), tables.Column("sector", priority=2),
               tables.Column("tickets", justify="right"))
    tables.show(console, "Top organisations", columns,
                [[safe(o["name"] or o["domain"]), o["sector"] or "—", str(o["tickets"])] for o in data["top_organisations"]], shape)
    render_engagements(console, data["engagements"], shape)
    render_funnel(console, data["implementations"], data["stage_changes"], data.get("stage_ladder", ()), shape)


def _value_columns(values: list[str]) -> list[tables.Column]:
    """One column per value, the biggest first and dropped last (the total column keeps the sum whole)."""
    return [tables.Column(v, v.replace("_", " "), priority=i + 1, justify="right") for i, v in enumerate(values)]


def render_matrix(console: Console, title: str, matrix: dict[str, dict[str, int]], shape: tables.Shape | None = None,
                  *, label: str = "type") -> None:
    """Rows × columns of counts with totals; the rows most first."""
    values = sorted({s for row in matrix.values() for s in row}, key=lambda s: (-sum(r.get(s, 0) for r in matrix.values()), s))
    columns = [tables.Column(label), *_value_columns(values), tables.Column("total", justify="right", style="bold")]
    rows = [[name.replace("_", " "), *(str(matrix[name].get(v, "")) for v in values), str(sum(matrix[name].values()))]
            for name in sorted(matrix, key=lambda t: (-sum(matrix[t].values()), t))]
    totals = [sum(matrix[t].get(v, 0) for t in matrix) for v in values]
    tables.show(console, title, columns, rows, shape, footer=["total", *map(str, totals), str(sum(totals))])


def render_by_month(console: Console, dimension: str, months: dict[str, dict[str, int]], shape: tables.Shape | None = None) -> None:
    by_value: dict[str, dict[str, int]] = {month: counts for month, counts in sorted(months.items())}
    values = sorted({v for counts in months.values() for v in counts}, key=lambda v: (-sum(m.get(v, 0) for m in months.values()), v))
    columns = [tables.Column("month"), *_value_columns(values), tables.Column("total", justify="right", style="bold")]
    rows = [[month, *(str(counts.get(v, "")) for v in values), str(sum(counts.values()))] for month, counts in by_value.items()]
    tables.show(console, f"Tickets by month × {dimension}", columns, rows, shape)


def render_times(console: Console, times: dict[str, Any], shape: tables.Shape | None = None) -> None:
    columns = (tables.Column("measure"), tables.Column("median", justify="right"), tables.Column("p90", justify="right"),
               tables.Column("tickets measured", justify="right"))
    rows = [[name.replace("_", " "), _fmt(v["median"]), _fmt(v["p90"]), str(v["n"])] for name, v in times.items() if isinstance(v, dict)]
    tables.show(console, "Response and resolution (hours)", columns, rows, shape)
    console.print(f"SLA met: first response {_pct(times['sla_first_response_met_pct'])}, resolution "
                  f"{_pct(times['sla_resolution_met_pct'])} · reopened (counted apart): {times['reopened']}")


def render_pairs(console: Console, title: str, values: dict[str, Any], shape: tables.Shape | None = None) -> None:
    columns = (tables.Column("measure"), tables.Column("value", justify="right"))
    tables.show(console, title, columns, [[key.replace("_", " "), _fmt(value)] for key, value in values.items()], shape)


def render_engagements(console: Console, engagements: dict[str, Any], shape: tables.Shape | None = None) -> None:
    """Engagements requested in the period by kind, with hours, and by sector."""
    if not engagements["by_kind"]:
        console.print("Engagements: none in the period")
        return
    sectors = sorted({s for row in engagements["by_kind_sector"].values() for s in row})
    columns = [tables.Column("kind"), tables.Column("count", justify="right"), tables.Column("hours", justify="right"),
               *_value_columns(sectors)]
    rows = []
    for kind, totals in engagements["by_kind"].items():
        row = engagements["by_kind_sector"].get(kind, {})
        rows.append([kind.replace("_", " "), str(totals["count"]), f"{totals['hours']:g}", *(str(row.get(s, {}).get("count", "")) for s in sectors)])
    title = f"Engagements ({engagements['count']}, {engagements['hours']:g} h; delivered {engagements['delivered']['count']})"
    tables.show(console, title, columns, rows, shape)


def render_funnel(console: Console, implementations: dict[str, dict[str, int]], reached: dict[str, dict[str, int]],
                  ladder: "tuple[str, ...] | list[str]" = (), shape: tables.Shape | None = None) -> None:
    """Where implementations stand at the end of the period, and how many reached each stage in it."""
    if not implementations and not reached:
        console.print("Implementations: none recorded")
        return
    columns = (tables.Column("standard"), tables.Column("stage"), tables.Column("at the end", justify="right"),
               tables.Column("reached in period", justify="right"))
    rows = []
    for standard in sorted({*implementations, *reached}):
        stages = {*implementations.get(standard, {}), *reached.get(standard, {})}
        for stage in sorted(stages, key=lambda st: (list(ladder).index(st) if st in ladder else len(ladder), st)):
            rows.append([standard, stage.replace("_", " "), str(implementations.get(standard, {}).get(stage, 0)),
                         str(reached.get(standard, {}).get(stage, 0))])
    tables.show(console, "Implementations by stage", columns, rows, shape)


def _fmt(value: Any) -> str:
    return NO_DATA if value is None else (f"{value:,.1f}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else str(value))


def _pct(value: float | None) -> str:
    return NO_DATA if value is None else f"{value:,.1f} %"


# -- CSV ------------------------------------------------------------------------------------------
def write_grouped_csv(data: dict[str, Any], target: "Path | Any") -> Path | None:
    """The --by table as CSV: to standard output, or as ``by_<dimensions>.csv`` in a folder."""
    header = [*data["by"], "tickets"]
    if isinstance(target, Path):
        target.mkdir(parents=True, exist_ok=True)
        path = target / f"by_{'_'.join(data['by'])}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            _write_rows(handle, header, [[row[k] for k in header] for row in data["rows"]])
        err.print(f"wrote {path}")
        return path
    _write_rows(target, header, [[row[k] for k in header] for row in data["rows"]])
    return None


def _write_rows(handle: Any, header: list[str], rows: list[list[Any]]) -> None:
    writer = csv_module.writer(handle)
    writer.writerow(header)
    writer.writerows(rows)


def write_csv(data: dict[str, Any], folder: Path) -> list[Path]:
    """One CSV per section, in long format (month, dimension, value, tickets …) for spreadsheets."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []

    def table(name: str, header: list[str], rows: list[list[Any]]) -> None:
        path = folder / f"{name}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            _write_rows(handle, header, rows)
        written.append(path)

    table("summary", ["measure", "value"], [[k, data[k]] for k in ("tickets", "messages", "duplicates", "threaded", "automated", "quarantined",
                                                                    "needs_triage", "docs_gaps")])
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
