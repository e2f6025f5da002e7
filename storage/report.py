"""Management information over a date range, section by section.

Definitions (the README repeats them):
- A ticket belongs to the period in which it was *opened* (``created_at``, UTC); months are UTC months.
- **First-response time**: from opening to the first reply to the enquirer (not notes, not
  acknowledgements). **Resolution time**: from opening to the *first* resolution. Both in
  calendar time and in business time of the team's calendar; business resolution time
  leaves out the time the ticket waited on the enquirer. Measured once, when they happen.
- **SLA met %**: of the tickets in the period with a target and a measurement, the share
  measured within the target.
- **Reopened**: tickets of the period resolved and then reopened; counted apart — their
  times are those of the first resolution, so they do not distort the figures.
- **Backlog**: tickets opened before the end of the period and not resolved: how many,
  how many unassigned, their age (median, p90, oldest) at the end of the period.
- **New / returning enquirers**: people with a ticket in the period whose first ticket
  ever is in the period / who wrote before.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, Select, func, literal, select, tuple_, union_all
from sqlalchemy.sql import ColumnElement

from storage.models import CONTACT, ORGANISATION, TICKET
from storage.knowledge import engagements_report, implementations_report, stage_changes_report
from storage.queries import summary

DIMENSIONS = ("type", "sector", "channel", "language", "team")
TOP_ORGANISATIONS = 15


def month_of(connection: Connection, column: Any) -> ColumnElement:
    if connection.dialect.name == "postgresql":
        return func.to_char(func.date_trunc("month", func.timezone("UTC", column)), "YYYY-MM")
    return func.strftime("%Y-%m", column)


def _window(since: datetime | None, until: datetime | None) -> list[Any]:
    clauses = []
    if since is not None:
        clauses.append(TICKET.c.created_at >= since)
    if until is not None:
        clauses.append(TICKET.c.created_at < until)
    return clauses


def by_month(c: Connection, since: datetime | None, until: datetime | None) -> dict[str, dict[str, dict[str, int]]]:
    """dimension → month → value → tickets."""
    result: dict[str, dict[str, dict[str, int]]] = {d: {} for d in DIMENSIONS}
    if c.dialect.name == "postgresql":
        months = _months(c, since, until)
        rows = c.execute(_by_month_postgresql(months)) if months else []
        for row in rows:
            values = row[1 : 1 + len(DIMENSIONS)]
            for index, dimension in enumerate(DIMENSIONS):
                if not (row.g >> (len(DIMENSIONS) - 1 - index)) & 1:  # this grouping set is (month, dimension)
                    result[dimension].setdefault(row.month, {})[str(values[index])] = int(row.n or 0)
        return result
    month = month_of(c, TICKET.c.created_at).label("month")
    for dimension in DIMENSIONS:
        column = getattr(TICKET.c, dimension)
        for row in c.execute(select(month, column, func.count()).where(*_window(since, until)).group_by(month, column)):
            result[dimension].setdefault(row[0], {})[str(row[1])] = row[2]
    return result


def _by_month_postgresql(months: list[tuple[str, datetime, datetime]]) -> Select[Any]:
    """Two levels: each month's tickets counted by every dimension at once (a few hundred rows a month), then the
    five breakdowns as grouping sets over those few rows. A branch per month, labelled by a constant, spares a
    time-zone conversion per ticket, and PostgreSQL shares the branches among its workers (Parallel Append); an
    index on (created_at, dimensions…) makes each branch an index-only range scan. (Grouping sets straight over
    the tickets sort the whole period once per set.)"""
    dims = [getattr(TICKET.c, d) for d in DIMENSIONS]
    fine = union_all(*[select(literal(label).label("month"), *dims, func.count().label("n")).where(*_window(start, end)).group_by(*dims)
                       for label, start, end in months]).subquery()
    columns = [getattr(fine.c, d) for d in DIMENSIONS]
    return select(fine.c.month, *columns, func.grouping(*columns).label("g"), func.sum(fine.c.n).label("n")).group_by(
        func.grouping_sets(*[tuple_(fine.c.month, column) for column in columns])
    )


def _months(c: Connection, since: datetime | None, until: datetime | None) -> list[tuple[str, datetime, datetime]]:
    """The UTC months from the period's first ticket to its last, as (YYYY-MM, start, end), cut to the period.

    A ticket stored meanwhile outside those months is left out, as if the report had run a moment earlier, rather
    than counted in a month it does not belong to."""
    first, last = c.execute(select(func.min(TICKET.c.created_at), func.max(TICKET.c.created_at)).where(*_window(since, until))).one()
    if first is None:
        return []
    months = []
    cursor = first.astimezone(timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    while cursor <= last:
        following = cursor.replace(year=cursor.year + cursor.month // 12, month=cursor.month % 12 + 1)
        start = cursor if since is None else max(cursor, since)
        end = following if until is None else min(following, until)
        months.append((f"{cursor:%Y-%m}", start, end))
        cursor = following
    return months


GROUPINGS = ("type", "sector", "channel", "language", "team", "organisation", "month")


def grouped(c: Connection, by: tuple[str, ...], since: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
    """Tickets of the period counted by any combination of ``GROUPINGS``: one row per combination that occurs,
    most tickets first (months in calendar order when ``month`` leads). A ticket without an organisation counts
    under ``none``."""
    unknown = [name for name in by if name not in GROUPINGS]
    if unknown or not by:
        raise ValueError(f"group by one or more of {', '.join(GROUPINGS)}; not {', '.join(unknown) or 'nothing'}")
    stmt = _grouped_counts(c, tuple(dict.fromkeys(by)), since, until)
    found = c.execute(stmt) if stmt is not None else []
    rows = [{name: str(row._mapping[name]) for name in by} | {"tickets": int(row.tickets)} for row in found]
    if by[0] == "month":
        return sorted(rows, key=lambda r: (r["month"], -r["tickets"], *(r[n] for n in by[1:])))
    return sorted(rows, key=lambda r: (-r["tickets"], *(r[n] for n in by)))


def _grouped_counts(c: Connection, by: tuple[str, ...], since: datetime | None, until: datetime | None) -> Select[Any] | None:
    """Two levels, as in by_month: the tickets counted by their own columns (organisation by id; on PostgreSQL a
    branch per month when ``month`` is wanted), then organisations named and the counts summed by name — two
    organisations of one name count together, their name being what the report shows. None: no tickets."""
    own = [TICKET.c.organisation_id if name == "organisation" else getattr(TICKET.c, name) for name in by if name != "month"]
    count = func.count().label("n")
    if "month" not in by:
        parts = [select(*own, count).where(*_window(since, until)).group_by(*own)]
    elif c.dialect.name == "postgresql":
        parts = [select(literal(label).label("month"), *own, count).where(*_window(start, end)).group_by(*own)
                 for label, start, end in _months(c, since, until)]
    else:
        month = month_of(c, TICKET.c.created_at).label("month")
        parts = [select(month, *own, count).where(*_window(since, until)).group_by(month, *own)]
    if not parts:
        return None
    fine = union_all(*parts).subquery()
    organisation = func.coalesce(ORGANISATION.c.name, ORGANISATION.c.domain, "none").label("organisation")
    columns = [organisation if name == "organisation" else fine.c[name] for name in by]
    source = fine.outerjoin(ORGANISATION, ORGANISATION.c.id == fine.c.organisation_id) if "organisation" in by else fine
    tickets = func.sum(fine.c.n)
    return select(*columns, tickets.label("tickets")).select_from(source).group_by(*columns).having(tickets > 0)  # a month without any


def organisations(c: Connection, since: datetime | None, until: datetime | None, limit: int = TOP_ORGANISATIONS) -> list[dict[str, Any]]:
    """The organisations with most tickets in the period, most first (then by domain)."""
    # Counted by organisation id (an index-only scan, a small hash of integers), named afterwards: the same
    # groups as by domain, name and sector, the domain being unique.
    counts = (select(TICKET.c.organisation_id, func.count().label("tickets"))
              .where(TICKET.c.organisation_id.is_not(None), *_window(since, until)).group_by(TICKET.c.organisation_id).subquery())
    rows = c.execute(
        select(ORGANISATION.c.domain, ORGANISATION.c.name, ORGANISATION.c.sector, counts.c.tickets)
        .join_from(counts, ORGANISATION, ORGANISATION.c.id == counts.c.organisation_id)
        .order_by(counts.c.tickets.desc(), ORGANISATION.c.domain)
        .limit(limit)
    )
    return [dict(r._mapping) for r in rows]


TIME_COLUMNS = {
    "first_response_hours": TICKET.c.first_response_seconds,
    "first_response_business_hours": TICKET.c.first_response_business_seconds,
    "resolution_hours": TICKET.c.resolution_seconds,
    "resolution_business_hours": TICKET.c.resolution_business_seconds,
}


def times(c: Connection, since: datetime | None, until: datetime | None) -> dict[str, Any]:
    """Median and p90 of each time (hours), SLA met %, reopened — over the tickets of the period."""
    where = _window(since, until)
    if c.dialect.name == "postgresql":
        return _times_postgresql(c, where)
    out: dict[str, Any] = {}
    for name, column in TIME_COLUMNS.items():
        values = sorted(v for (v,) in c.execute(select(column).where(column.is_not(None), *where)))
        out[name] = {"median": _hours(_quantile(values, 0.5)), "p90": _hours(_quantile(values, 0.9)), "n": len(values)}
    met = c.execute(
        select(
            func.count().filter(TICKET.c.first_response_met.is_(True)), func.count(TICKET.c.first_response_met),
            func.count().filter(TICKET.c.resolution_met.is_(True)), func.count(TICKET.c.resolution_met),
            func.count().filter(TICKET.c.reopened_count > 0),
        ).where(*where)
    ).one()
    out["sla_first_response_met_pct"] = _pct(met[0], met[1])
    out["sla_resolution_met_pct"] = _pct(met[2], met[3])
    out["reopened"] = int(met[4] or 0)
    return out


def _median_and_p90() -> ColumnElement[Any]:
    """``ARRAY[0.5, 0.9]``, for ``percentile_cont``: PostgreSQL's dialect is imported here, by a report on PostgreSQL
    only (a command on SQLite does not load it)."""
    from sqlalchemy.dialects import postgresql  # noqa: PLC0415

    return postgresql.array([literal(0.5), literal(0.9)])


def _times_postgresql(c: Connection, where: list[Any]) -> dict[str, Any]:
    """The same figures from one statement. A percentile sorts its column's values, and sorts of an ordered-set
    aggregate are not shared among parallel workers; so the statement has two branches — first response and
    resolution, two sorts each — which PostgreSQL runs side by side (Parallel Append), each an index-only scan
    of (created_at, the measures…). ``percentile_cont`` over an array gives the median and p90 from one sort."""
    quantiles = _median_and_p90()

    def branch(part: str, calendar: Any, business: Any, met: Any) -> Select[Any]:
        # the branches' columns have the same types, so that PostgreSQL can append them as they are
        return select(
            literal(part).label("part"),
            func.percentile_cont(quantiles).within_group(calendar).label("calendar"), func.count(calendar).label("calendar_n"),
            func.percentile_cont(quantiles).within_group(business).label("business"), func.count(business).label("business_n"),
            func.count().filter(met.is_(True)).label("met"), func.count(met).label("measured"),
            func.count().filter(TICKET.c.reopened_count > 0).label("reopened"),
        ).where(*where)

    rows = {row.part: row for row in c.execute(union_all(
        branch("first_response", TICKET.c.first_response_seconds, TICKET.c.first_response_business_seconds, TICKET.c.first_response_met),
        branch("resolution", TICKET.c.resolution_seconds, TICKET.c.resolution_business_seconds, TICKET.c.resolution_met),
    ))}
    out: dict[str, Any] = {}
    for part, row in rows.items():
        for kind, pair, n in (("", row.calendar, row.calendar_n), ("_business", row.business, row.business_n)):
            median, p90 = pair or (None, None)
            out[f"{part}{kind}_hours"] = {"median": _hours(median), "p90": _hours(p90), "n": int(n)}
    first, resolution = rows["first_response"], rows["resolution"]
    return {name: out[name] for name in TIME_COLUMNS} | {
        "sla_first_response_met_pct": _pct(first.met, first.measured),
        "sla_resolution_met_pct": _pct(resolution.met, resolution.measured),
        "reopened": int(resolution.reopened),
    }


def backlog(c: Connection, until: datetime) -> dict[str, Any]:
    # Open at the end: never resolved, or resolved after it. Two disjoint parts, each served by its own index —
    # a partial one of the unresolved tickets and one on resolved_at — instead of every ticket opened before the end.
    still_open = union_all(
        select(TICKET.c.created_at, TICKET.c.assignee).where(TICKET.c.resolved_at.is_(None), TICKET.c.created_at < until),
        select(TICKET.c.created_at, TICKET.c.assignee).where(TICKET.c.resolved_at >= until, TICKET.c.created_at < until),
    ).subquery()
    counts = [func.count(), func.count().filter(still_open.c.assignee.is_(None))]
    if c.dialect.name == "postgresql":
        age = func.extract("epoch", literal(until) - still_open.c.created_at)
        quantiles = _median_and_p90()
        n, unassigned, oldest, pair = c.execute(select(*counts, func.max(age), func.percentile_cont(quantiles).within_group(age))).one()
        median, p90 = pair or (None, None)
    else:
        end = literal(until.astimezone(timezone.utc).replace(tzinfo=None).isoformat(sep=" "))
        age = (func.julianday(end) - func.julianday(still_open.c.created_at)) * 86400.0
        n, unassigned, oldest = c.execute(select(*counts, func.max(age))).one()
        ages = sorted(v for (v,) in c.execute(select(age)))
        median, p90 = _quantile(ages, 0.5), _quantile(ages, 0.9)
    return {"open": int(n or 0), "unassigned": int(unassigned or 0), "age_median_days": _days(median),
            "age_p90_days": _days(p90), "oldest_days": _days(oldest)}


def enquirers(c: Connection, since: datetime | None, until: datetime | None) -> dict[str, int]:
    """A contact is created with its first message, so its ``created_at`` is when it first wrote."""
    # The contacts with a ticket in the period, found from the contact's side (a semi-join): PostgreSQL builds one
    # hash of the period's tickets, shared by its workers, instead of deduplicating them first.
    wrote = select(TICKET.c.id).where(TICKET.c.contact_id == CONTACT.c.id, *_window(since, until)).exists()
    new_condition = CONTACT.c.created_at >= since if since is not None else literal(True)
    total, new = c.execute(select(func.count(), func.count().filter(new_condition)).select_from(CONTACT).where(wrote)).one()
    return {"enquirers": int(total or 0), "new": int(new or 0), "returning": int(total or 0) - int(new or 0)}


def prepare(c: Connection) -> None:
    """Give a report's transaction room to hash and sort in memory (PostgreSQL's default work_mem is 4 MB), and no
    JIT: compiling a plan takes 50–150 ms, more than any section's scan saves by it."""
    if c.dialect.name == "postgresql":
        c.exec_driver_sql("SET LOCAL work_mem = '64MB'")
        c.exec_driver_sql("SET LOCAL jit = off")


SECTIONS: dict[str, Callable[..., Any]] = {
    "summary": lambda c, since, until: summary(c, since, until),
    "by_month": by_month,
    "organisations": organisations,
    "times": times,
    "backlog": lambda c, since, until: backlog(c, until),
    "enquirers": enquirers,
    "engagements": lambda c, since, until: engagements_report(c, since, until, lambda column: month_of(c, column)),
    "implementations": lambda c, since, until: implementations_report(c, until),
    "stage_changes": stage_changes_report,
}


def full_report(c: Connection, since: datetime | None, until: datetime) -> dict[str, Any]:
    prepare(c)
    data = summary(c, since, until)  # the foundation's keys stay at the top level
    data["by_month"] = by_month(c, since, until)
    data["top_organisations"] = organisations(c, since, until)
    data["times"] = times(c, since, until)
    data["backlog"] = backlog(c, until)
    data["enquirers"] = enquirers(c, since, until)
    # Knowledge of implementations: the desk's engagements, where implementations stand, and the funnel of the period
    data["engagements"] = engagements_report(c, since, until, lambda column: month_of(c, column))
    data["implementations"] = implementations_report(c, until)
    data["stage_changes"] = stage_changes_report(c, since, until)
    return data


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return float(values[0])
    return float(statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1])


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(float(seconds) / 3600, 2)


def _days(seconds: float | None) -> float | None:
    return None if seconds is None else round(float(seconds) / 86400, 2)


def _pct(part: Any, whole: Any) -> float | None:
    return None if not whole else round(100.0 * float(part or 0) / float(whole), 1)
