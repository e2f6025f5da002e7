"""``/reports``: the management information of ``storage.report`` over a chosen period, as server-drawn SVG
charts with the tables beneath, and ``/reports.csv?table=NAME`` to take any table away.

The period is a month (``month=YYYY-MM``) or dates (``since``, ``until`` inclusive, UTC); by default the
last twelve months up to today. Needs the ``report`` right.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from storage.models import utcnow
from storage.report import DIMENSIONS, full_report
from web.charts import hbars, stacked_bars
from web.context import Web

MAX_DAYS = 366 * 5


@dataclass(frozen=True)
class Period:
    since: datetime
    until: datetime  # exclusive
    label: str
    problem: str = ""

    @property
    def query(self) -> str:
        return f"since={self.since:%Y-%m-%d}&until={(self.until - timedelta(days=1)):%Y-%m-%d}"


def _month(value: str) -> tuple[datetime, datetime] | None:
    try:
        start = datetime.strptime(value[:7], "%Y-%m").replace(tzinfo=timezone.utc)
    except ValueError:
        return None
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


def _day(value: str) -> datetime | None:
    try:
        return datetime.combine(date.fromisoformat(value[:10]), datetime.min.time(), timezone.utc)
    except ValueError:
        return None


def period_of(request: Request, now: datetime) -> Period:
    q = request.query_params
    today = datetime.combine(now.date(), datetime.min.time(), timezone.utc)
    default_since = (today.replace(day=1) - timedelta(days=335)).replace(day=1)
    fallback = Period(default_since, today + timedelta(days=1), "the last twelve months")
    if q.get("month"):
        bounds = _month(q["month"])
        if bounds is None:
            return Period(fallback.since, fallback.until, fallback.label, "give the month as YYYY-MM")
        return Period(bounds[0], bounds[1], f"{bounds[0]:%B %Y}")
    if q.get("since") or q.get("until"):
        since, last = _day(q.get("since", "")), _day(q.get("until", "")) or today
        if since is None or last < since or (last - since).days > MAX_DAYS:
            return Period(fallback.since, fallback.until, fallback.label, f"give dates as YYYY-MM-DD, the end after the start, at most {MAX_DAYS} days")
        return Period(since, last + timedelta(days=1), f"{since:%Y-%m-%d} to {last:%Y-%m-%d}")
    return fallback


def months_between(since: datetime, until: datetime) -> list[str]:
    out, cursor = [], since.replace(day=1)
    while cursor < until:
        out.append(f"{cursor:%Y-%m}")
        cursor = cursor.replace(year=cursor.year + 1, month=1) if cursor.month == 12 else cursor.replace(month=cursor.month + 1)
    return out


def tables(data: dict[str, Any], months: list[str]) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """Every table of the page, name → (header, rows): what the HTML shows and the CSV gives."""
    out: dict[str, tuple[list[str], list[list[Any]]]] = {}
    for dimension in DIMENSIONS:
        per_month = data["by_month"].get(dimension, {})
        values = sorted({v for m in per_month.values() for v in m}, key=lambda v: -sum(m.get(v, 0) for m in per_month.values()))
        out[f"volume_by_{dimension}"] = ([dimension, *months, "total"],
                                         [[v, *(per_month.get(m, {}).get(v, 0) for m in months), sum(per_month.get(m, {}).get(v, 0) for m in months)]
                                          for v in values])
    t = data["times"]
    out["times"] = (["measure", "median hours", "p90 hours", "tickets measured"],
                    [[name.replace("_", " "), t[name]["median"], t[name]["p90"], t[name]["n"]]
                     for name in ("first_response_hours", "first_response_business_hours", "resolution_hours", "resolution_business_hours")])
    out["sla"] = (["target", "met %"], [["first response", t.get("sla_first_response_met_pct")], ["resolution", t.get("sla_resolution_met_pct")],
                                         ["reopened tickets", t.get("reopened")]])
    b = data["backlog"]
    out["backlog"] = (["measure", "value"], [["open at the end", b["open"]], ["unassigned", b["unassigned"]],
                                             ["median age (days)", b["age_median_days"]], ["p90 age (days)", b["age_p90_days"]],
                                             ["oldest (days)", b["oldest_days"]]])
    out["top_organisations"] = (["organisation", "domain", "sector", "tickets"],
                                [[o.get("name") or "", o["domain"], o.get("sector") or "", o["tickets"]] for o in data["top_organisations"]])
    e = data["enquirers"]
    out["enquirers"] = (["enquirers", "new", "returning"], [[e["enquirers"], e["new"], e["returning"]]])
    out["intake"] = (["measure", "count"], [[k, data.get(k, 0)] for k in ("tickets", "messages", "duplicates", "threaded", "automated",
                                                                        "quarantined", "needs_triage")])
    return out


def charts(data: dict[str, Any], months: list[str]) -> list[Any]:
    drawn = []
    for dimension in DIMENSIONS:
        per_month = data["by_month"].get(dimension, {})
        series: dict[str, dict[str, int]] = {}
        for month, values in per_month.items():
            for value, count in values.items():
                series.setdefault(value, {})[month] = count
        drawn.append(stacked_bars(f"Tickets by month and {dimension}", months, series))
    t = data["times"]
    drawn.append(hbars("First response and resolution (hours)", [
        ("first response median", t["first_response_hours"]["median"]), ("first response p90", t["first_response_hours"]["p90"]),
        ("resolution median", t["resolution_hours"]["median"]), ("resolution p90", t["resolution_hours"]["p90"]),
        ("business: first response median", t["first_response_business_hours"]["median"]),
        ("business: resolution median", t["resolution_business_hours"]["median"])], unit=" h"))
    drawn.append(hbars("SLA met", [("first response", t.get("sla_first_response_met_pct")), ("resolution", t.get("sla_resolution_met_pct"))],
                       unit="%", maximum=100.0))
    b = data["backlog"]
    drawn.append(hbars("Backlog at the end of the period", [("open", b["open"]), ("unassigned", b["unassigned"]),
                                                            ("median age (days)", b["age_median_days"]), ("p90 age (days)", b["age_p90_days"])]))
    if data["top_organisations"]:
        drawn.append(hbars("Top organisations (tickets)", [(o.get("name") or o["domain"], o["tickets"]) for o in data["top_organisations"][:10]]))
    return drawn


def report_routes(web: Web) -> list[BaseRoute]:
    def load(request: Request) -> tuple[Period, dict[str, Any], list[str]]:
        period = period_of(request, utcnow())
        with web.engine.begin() as c:  # a transaction: the report sets its working memory locally on PostgreSQL
            data = full_report(c, period.since, period.until)
        return period, data, months_between(period.since, period.until)

    def page(request: Request) -> Response:
        web.require(request, "report")
        period, data, months = load(request)
        today = utcnow()
        this_month = f"{today:%Y-%m}"
        last_month = f"{(today.replace(day=1) - timedelta(days=1)):%Y-%m}"
        return web.render(request, "reports.html", nav="reports", period=period, data=data, charts=charts(data, months),
                          tables=tables(data, months), this_month=this_month, last_month=last_month)

    def download(request: Request) -> Response:
        web.require(request, "report")
        period, data, months = load(request)
        name = request.query_params.get("table", "")
        all_tables = tables(data, months)
        if name not in all_tables:
            return web.missing(request, f"No such table; one of {', '.join(all_tables)}.")
        header, rows = all_tables[name]
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        for row in rows:  # a cell starting with = + - @ would be a formula in a spreadsheet: quote it as text
            writer.writerow(["'" + c if isinstance(c, str) and c[:1] in ("=", "+", "-", "@", "\t", "\r") else c for c in row])
        filename = f"{name}_{period.since:%Y-%m-%d}_{(period.until - timedelta(days=1)):%Y-%m-%d}.csv"
        return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    return [Route("/reports", page), Route("/reports.csv", download)]
