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
from datetime import datetime
from typing import Any

from sqlalchemy.dialects import postgresql
from sqlalchemy import Connection, and_, case, func, literal, select, tuple_
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
    """dimension → month → value → tickets (one scan on PostgreSQL: GROUPING SETS)."""
    month = month_of(c, TICKET.c.created_at).label("month")
    where = _window(since, until)
    result: dict[str, dict[str, dict[str, int]]] = {d: {} for d in DIMENSIONS}
    if c.dialect.name == "postgresql":
        # Two levels: one hash aggregate over (month, every dimension) reduces the period to a few
        # thousand rows; the five breakdowns are grouping sets over those. (Grouping sets straight
        # over the tickets make PostgreSQL sort the whole period once per set.)
        dims = [getattr(TICKET.c, d) for d in DIMENSIONS]
        month_of_row = func.date_trunc("month", func.timezone("UTC", TICKET.c.created_at)).label("month")
        fine = select(month_of_row, *dims, func.count().label("n")).where(*where).group_by(month_of_row, *dims).subquery()
        columns = [getattr(fine.c, d) for d in DIMENSIONS]
        grouping = func.grouping(*columns).label("g")
        stmt = select(func.to_char(fine.c.month, "YYYY-MM").label("month"), *columns, grouping, func.sum(fine.c.n)).group_by(
            func.grouping_sets(*[tuple_(fine.c.month, column) for column in columns])
        )
        for row in c.execute(stmt):
            values = row[1 : 1 + len(DIMENSIONS)]
            for index, dimension in enumerate(DIMENSIONS):
                if not (row.g >> (len(DIMENSIONS) - 1 - index)) & 1:  # this grouping set is (month, dimension)
                    result[dimension].setdefault(row.month, {})[str(values[index])] = int(row[-1] or 0)
        return result
    for dimension in DIMENSIONS:
        column = getattr(TICKET.c, dimension)
        for row in c.execute(select(month, column, func.count()).where(*where).group_by(month, column)):
            result[dimension].setdefault(row[0], {})[str(row[1])] = row[2]
    return result


GROUPINGS = ("type", "sector", "channel", "language", "team", "organisation", "month")


def grouped(c: Connection, by: tuple[str, ...], since: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
    """Tickets of the period counted by any combination of ``GROUPINGS``: one row per combination that occurs,
    most tickets first (months in calendar order when ``month`` leads). A ticket without an organisation counts
    under ``none``."""
    unknown = [name for name in by if name not in GROUPINGS]
    if unknown or not by:
        raise ValueError(f"group by one or more of {', '.join(GROUPINGS)}; not {', '.join(unknown) or 'nothing'}")
    organisation = func.coalesce(ORGANISATION.c.name, ORGANISATION.c.domain, "none")
    columns = [(month_of(c, TICKET.c.created_at) if name == "month" else organisation if name == "organisation"
                else getattr(TICKET.c, name)).label(name) for name in by]
    stmt = (select(*columns, func.count().label("tickets"))
            .select_from(TICKET.outerjoin(ORGANISATION, ORGANISATION.c.id == TICKET.c.organisation_id))
            .where(*_window(since, until)).group_by(*columns))
    rows = [{name: str(row._mapping[name]) for name in by} | {"tickets": int(row.tickets)} for row in c.execute(stmt)]
    if by[0] == "month":
        return sorted(rows, key=lambda r: (r["month"], -r["tickets"], *(r[n] for n in by[1:])))
    return sorted(rows, key=lambda r: (-r["tickets"], *(r[n] for n in by)))


def organisations(c: Connection, since: datetime | None, until: datetime | None, limit: int = TOP_ORGANISATIONS) -> list[dict[str, Any]]:
    rows = c.execute(
        select(ORGANISATION.c.domain, ORGANISATION.c.name, ORGANISATION.c.sector, func.count().label("tickets"))
        .select_from(TICKET.join(ORGANISATION, ORGANISATION.c.id == TICKET.c.organisation_id))
        .where(*_window(since, until))
        .group_by(ORGANISATION.c.domain, ORGANISATION.c.name, ORGANISATION.c.sector)
        .order_by(func.count().desc(), ORGANISATION.c.domain)
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
    out: dict[str, Any] = {}
    if c.dialect.name == "postgresql":
        # percentile_cont over an array of fractions: the median and p90 of a column from one sort
        quantiles = postgresql.array([literal(0.5), literal(0.9)])
        selects = []
        for column in TIME_COLUMNS.values():
            selects += [func.percentile_cont(quantiles).within_group(column), func.count(column)]
        row = c.execute(select(*selects).where(*where)).one()
        for i, name in enumerate(TIME_COLUMNS):
            pair, n = row[2 * i], row[2 * i + 1]
            median, p90 = (pair or [None, None])[:2]
            out[name] = {"median": _hours(median), "p90": _hours(p90), "n": n}
    else:
        for name, column in TIME_COLUMNS.items():
            values = sorted(v for (v,) in c.execute(select(column).where(column.is_not(None), *where)))
            out[name] = {"median": _hours(_quantile(values, 0.5)), "p90": _hours(_quantile(values, 0.9)), "n": len(values)}
    met = c.execute(
        select(
            func.sum(case((TICKET.c.first_response_met.is_(True), 1), else_=0)), func.count(TICKET.c.first_response_met),
            func.sum(case((TICKET.c.resolution_met.is_(True), 1), else_=0)), func.count(TICKET.c.resolution_met),
            func.sum(case((TICKET.c.reopened_count > 0, 1), else_=0)),
        ).where(*where)
    ).one()
    out["sla_first_response_met_pct"] = _pct(met[0], met[1])
    out["sla_resolution_met_pct"] = _pct(met[2], met[3])
    out["reopened"] = int(met[4] or 0)
    return out


def backlog(c: Connection, until: datetime) -> dict[str, Any]:
    open_at_end = and_(TICKET.c.created_at < until, (TICKET.c.resolved_at.is_(None)) | (TICKET.c.resolved_at >= until))
    age = func.extract("epoch", literal(until) - TICKET.c.created_at) if c.dialect.name == "postgresql" else (
        (func.julianday(literal(until.replace(tzinfo=None).isoformat(sep=" "))) - func.julianday(TICKET.c.created_at)) * 86400.0
    )
    counts = c.execute(
        select(func.count(), func.sum(case((TICKET.c.assignee.is_(None), 1), else_=0)), func.max(age)).where(open_at_end)
    ).one()
    if c.dialect.name == "postgresql":
        median, p90 = c.execute(
            select(func.percentile_cont(0.5).within_group(age), func.percentile_cont(0.9).within_group(age)).where(open_at_end)
        ).one()
    else:
        ages = sorted(v for (v,) in c.execute(select(age).where(open_at_end)))
        median, p90 = _quantile(ages, 0.5), _quantile(ages, 0.9)
    return {"open": int(counts[0] or 0), "unassigned": int(counts[1] or 0), "age_median_days": _days(median),
            "age_p90_days": _days(p90), "oldest_days": _days(counts[2])}


def enquirers(c: Connection, since: datetime | None, until: datetime | None) -> dict[str, int]:
    """A contact is created with its first message, so its ``created_at`` is when it first wrote."""
    in_period = select(TICKET.c.contact_id).where(TICKET.c.contact_id.is_not(None), *_window(since, until)).distinct().subquery()
    new_condition = CONTACT.c.created_at >= since if since is not None else literal(True)
    row = c.execute(
        select(func.count(), func.sum(case((new_condition, 1), else_=0)))
        .select_from(in_period.join(CONTACT, CONTACT.c.id == in_period.c.contact_id))
    ).one()
    total, new = int(row[0] or 0), int(row[1] or 0)
    return {"enquirers": total, "new": new, "returning": total - new}


def prepare(c: Connection) -> None:
    """Give a report's transaction room to hash and sort in memory (PostgreSQL's default work_mem is 4 MB)."""
    if c.dialect.name == "postgresql":
        c.exec_driver_sql("SET LOCAL work_mem = '64MB'")


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
