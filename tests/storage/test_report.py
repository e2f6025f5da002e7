"""Management information against hand-computed fixtures, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select

from storage.intake_store import CONTACT, ORGANISATION, TICKET
from storage.report import DIMENSIONS, TIME_COLUMNS, backlog, by_month, enquirers, full_report, grouped, organisations, times

UTC = timezone.utc
OCT = datetime(2026, 10, 1, tzinfo=UTC)
NOV = datetime(2026, 11, 1, tzinfo=UTC)
H = 3600.0


def _ticket(**values: object) -> dict:
    base = {"status": "open", "subject": "s", "channel": "email", "type": "schema", "sector": "government", "language": "en",
            "team": "data", "priority": "normal", "created_at": OCT + timedelta(days=1), "updated_at": OCT,
            "assignment_count": 0, "paused_business_seconds": 0.0, "reopened_count": 0}
    base.update(values)
    return base


@pytest.fixture
def fixtures(engine: Engine) -> Engine:
    """October 2026: five tickets with known times; one September ticket from a returning enquirer; one in November."""
    with engine.begin() as c:
        gov = c.execute(insert(ORGANISATION).values(domain="finance.gov.uk", name="Finance", sector="government", created_at=OCT).returning(ORGANISATION.c.id)).scalar()
        ngo = c.execute(insert(ORGANISATION).values(domain="watch.org", name="Watch", sector="civil_society", created_at=OCT).returning(ORGANISATION.c.id)).scalar()
        # contacts are created with their first message: a and d in September, b in October
        a, b, d = (c.execute(insert(CONTACT).values(display_name=n, created_at=at).returning(CONTACT.c.id)).scalar()
                   for n, at in (("a", OCT - timedelta(days=10)), ("b", OCT + timedelta(days=3)), ("d", OCT - timedelta(days=12))))
        rows = [
            # first response after 1..5 business hours; calendar hours 2, 4, 6, 8, 10; three within SLA
            _ticket(contact_id=a, organisation_id=gov, first_response_seconds=2 * H, first_response_business_seconds=1 * H, first_response_met=True,
                    status="resolved", resolved_at=OCT + timedelta(days=3), resolution_seconds=48 * H, resolution_business_seconds=16 * H, resolution_met=True),
            _ticket(contact_id=a, organisation_id=gov, first_response_seconds=4 * H, first_response_business_seconds=2 * H, first_response_met=True,
                    type="tools", created_at=OCT + timedelta(days=2)),
            _ticket(contact_id=b, organisation_id=ngo, sector="civil_society", first_response_seconds=6 * H, first_response_business_seconds=3 * H,
                    first_response_met=True, language="es", team="latam", created_at=OCT + timedelta(days=3)),
            _ticket(contact_id=b, organisation_id=ngo, sector="civil_society", first_response_seconds=8 * H, first_response_business_seconds=4 * H,
                    first_response_met=False, created_at=OCT + timedelta(days=4), status="resolved", resolved_at=OCT + timedelta(days=9),
                    resolution_seconds=120 * H, resolution_business_seconds=40 * H, resolution_met=False, reopened_count=1),
            _ticket(contact_id=b, first_response_seconds=10 * H, first_response_business_seconds=5 * H, first_response_met=False,
                    created_at=OCT + timedelta(days=5), assignee=None),
            # September: contact a wrote before October → a is returning; contact d wrote only in September
            _ticket(contact_id=a, created_at=OCT - timedelta(days=10), status="resolved", resolved_at=OCT - timedelta(days=5)),
            _ticket(contact_id=d, created_at=OCT - timedelta(days=12), status="resolved", resolved_at=OCT - timedelta(days=1)),
            # November: outside the period
            _ticket(contact_id=d, created_at=NOV + timedelta(days=1), type="policy"),
        ]
        for i, row in enumerate(rows):
            row.setdefault("assignee", "priya" if i != 4 else None)
            c.execute(insert(TICKET).values(**row))
    return engine


def test_volumes_by_month_and_dimension(fixtures: Engine) -> None:
    with fixtures.connect() as c:
        data = by_month(c, OCT, NOV)
    assert data["type"] == {"2026-10": {"schema": 4, "tools": 1}}
    assert data["sector"] == {"2026-10": {"government": 3, "civil_society": 2}}
    assert data["team"] == {"2026-10": {"data": 4, "latam": 1}}
    assert data["language"] == {"2026-10": {"en": 4, "es": 1}}
    with fixtures.connect() as c:
        everything = by_month(c, None, None)
    assert everything["type"]["2026-09"] == {"schema": 2}
    assert everything["type"]["2026-11"] == {"policy": 1}


def test_times_medians_p90_sla_and_reopened(fixtures: Engine) -> None:
    with fixtures.connect() as c:
        data = times(c, OCT, NOV)
    assert data["first_response_business_hours"] == {"median": 3.0, "p90": 4.6, "n": 5}
    assert data["first_response_hours"] == {"median": 6.0, "p90": 9.2, "n": 5}
    assert data["resolution_business_hours"] == {"median": 28.0, "p90": 37.6, "n": 2}
    assert data["sla_first_response_met_pct"] == 60.0
    assert data["sla_resolution_met_pct"] == 50.0
    assert data["reopened"] == 1


def test_backlog_at_the_end_of_the_period(fixtures: Engine) -> None:
    with fixtures.connect() as c:
        data = backlog(c, NOV)
    # open at the end of October: the three October tickets never resolved
    assert data["open"] == 3
    assert data["unassigned"] == 1
    assert data["oldest_days"] == 29.0
    assert data["age_median_days"] == 28.0


def test_new_and_returning_enquirers_and_top_organisations(fixtures: Engine) -> None:
    with fixtures.connect() as c:
        people = enquirers(c, OCT, NOV)
        orgs = organisations(c, OCT, NOV)
    assert people == {"enquirers": 2, "new": 1, "returning": 1}  # a wrote in September; b is new
    assert [(o["domain"], o["tickets"]) for o in orgs] == [("finance.gov.uk", 2), ("watch.org", 2)]


def test_full_report_keeps_the_foundation_keys(fixtures: Engine) -> None:
    with fixtures.connect() as c:
        data = full_report(c, OCT, NOV)
    for key in ("tickets", "messages", "duplicates", "threaded", "automated", "quarantined", "by_type", "by_sector", "by_team", "by_channel"):
        assert key in data
    assert data["tickets"] == 5
    assert data["by_type"] == {"schema": 4, "tools": 1}


# -- Against a straightforward computation ---------------------------------------------------------------------
# Every section, on both databases, compared with the same figures computed in Python from the stored rows, over a
# period that starts and ends inside a month, on tickets with every kind of gap. Measured times are multiples of
# 0.1 hour and opening times multiples of 0.02 day, so that every median and p90 lands clear of a rounding edge.

SINCE = datetime(2026, 9, 10, 12, tzinfo=UTC)
UNTIL = datetime(2026, 11, 20, tzinfo=UTC)


@pytest.fixture
def many(engine: Engine) -> Engine:
    """400 tickets from August to December 2026: organisations of one name, none, or no name; enquirers who wrote
    before the period, in it, and never; measures missing at random; tickets opened and resolved on the period's
    edges."""
    rng = random.Random(18)
    start = datetime(2026, 8, 1, tzinfo=UTC)
    with engine.begin() as c:
        orgs = [c.execute(insert(ORGANISATION).values(domain=domain, name=name, sector=sector, created_at=start)
                          .returning(ORGANISATION.c.id)).scalar()
                for domain, name, sector in (("a.gov", "Finance", "government"), ("b.gov", "Finance", "government"),
                                             ("c.org", None, "civil_society"), ("d.edu", "Uni", "academia"),
                                             ("e.com", "Firm", "private_sector"), ("f.org", "Watch", None))]
        contacts = [c.execute(insert(CONTACT).values(display_name=f"p{i}", created_at=start + timedelta(days=rng.randrange(130)))
                              .returning(CONTACT.c.id)).scalar() for i in range(60)]
        first_wrote_at_the_start = c.execute(insert(CONTACT).values(display_name="q", created_at=SINCE).returning(CONTACT.c.id)).scalar()
        rows = [_random_ticket(rng, start + timedelta(days=0.02 * rng.randrange(7000)), orgs, contacts) for _ in range(390)]
        rows += [_random_ticket(rng, at, orgs, contacts) | {"resolved_at": resolved}
                 for at, resolved in ((SINCE, UNTIL), (UNTIL, None), (UNTIL - timedelta(days=1), UNTIL), (SINCE - timedelta(days=2), None),
                                      (SINCE, None), (UNTIL - timedelta(seconds=1728), UNTIL + timedelta(days=1)),
                                      (datetime(2027, 2, 3, tzinfo=UTC), None), (datetime(2027, 4, 5, tzinfo=UTC), None))]  # none in March
        rows[-3]["contact_id"] = first_wrote_at_the_start
        c.execute(insert(TICKET), rows)
    return engine


def _random_ticket(rng: random.Random, at: datetime, orgs: list[int], contacts: list[int]) -> dict:
    def measure(hours: float) -> float | None:
        return None if rng.random() < 0.2 else 360.0 * rng.randrange(int(hours * 10))  # a multiple of 0.1 hour

    resolved = None if rng.random() < 0.3 else at + timedelta(days=0.02 * rng.randrange(1, 2000))
    return _ticket(
        created_at=at, resolved_at=resolved, status="resolved" if resolved else "open",
        type=rng.choice(("schema", "tools", "policy", "data_use")), sector=rng.choice(("government", "academia", "media")),
        channel=rng.choice(("email", "slack", "x")), language=rng.choice(("en", "es", "fr")), team=rng.choice(("data", "tech", "latam")),
        organisation_id=rng.choice([*orgs, None]), contact_id=rng.choice([*contacts, None]),
        assignee=rng.choice(("priya", "tom", None)),
        first_response_seconds=measure(60), first_response_business_seconds=measure(30), first_response_met=rng.choice((True, False, None)),
        resolution_seconds=measure(600), resolution_business_seconds=measure(200), resolution_met=rng.choice((True, False, None)),
        reopened_count=rng.choice((0, 0, 0, 1, 2)),
    )


def _stored(engine: Engine) -> tuple[list[Any], dict[int, Any], dict[int, Any]]:
    with engine.connect() as c:
        return (list(c.execute(select(TICKET))), {r.id: r for r in c.execute(select(ORGANISATION))},
                {r.id: r for r in c.execute(select(CONTACT))})


def _in(tickets: list[Any], since: datetime | None, until: datetime | None) -> list[Any]:
    return [t for t in tickets if (since is None or t.created_at >= since) and (until is None or t.created_at < until)]


def _percentile(values: list[float], q: float) -> float | None:
    """PostgreSQL's percentile_cont: linear between the two nearest ranks."""
    if not values:
        return None
    values = sorted(values)
    h = q * (len(values) - 1)
    low = math.floor(h)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (h - low)


def _round(value: float | None, unit: float) -> float | None:
    return None if value is None else round(value / unit, 2)


@pytest.mark.parametrize("since, until", [(SINCE, UNTIL), (None, UNTIL), (None, None)])
def test_by_month_matches_a_count_of_the_stored_tickets(many: Engine, since: datetime | None, until: datetime | None) -> None:
    tickets, _, _ = _stored(many)
    expected: dict[str, dict[str, dict[str, int]]] = {d: {} for d in DIMENSIONS}
    for t in _in(tickets, since, until):
        for d in DIMENSIONS:
            month = expected[d].setdefault(f"{t.created_at.astimezone(UTC):%Y-%m}", {})
            month[getattr(t, d)] = month.get(getattr(t, d), 0) + 1
    with many.connect() as c:
        assert by_month(c, since, until) == expected


@pytest.mark.parametrize("by, since, until", [(("type",), SINCE, UNTIL), (("organisation",), SINCE, UNTIL), (("month",), None, None),
                                             (("month", "organisation", "channel"), SINCE, UNTIL), (("sector", "month"), SINCE, None)])
def test_grouped_matches_a_count_of_the_stored_tickets(many: Engine, by: tuple[str, ...], since: datetime | None, until: datetime | None) -> None:
    tickets, orgs, _ = _stored(many)
    counts: dict[tuple[str, ...], int] = {}
    for t in _in(tickets, since, until):
        org = orgs.get(t.organisation_id)
        values = {"month": f"{t.created_at.astimezone(UTC):%Y-%m}", "organisation": (org.name or org.domain) if org else "none"}
        key = tuple(values.get(name) or str(getattr(t, name)) for name in by)
        counts[key] = counts.get(key, 0) + 1
    with many.connect() as c:
        rows = grouped(c, by, since, until)
    assert {tuple(r[n] for n in by): r["tickets"] for r in rows} == counts
    assert len(rows) == len(counts)
    assert sum(r["tickets"] for r in rows) == len(_in(tickets, since, until))


def test_top_organisations_match_a_count_of_the_stored_tickets(many: Engine) -> None:
    tickets, orgs, _ = _stored(many)
    counts: dict[int, int] = {}
    for t in _in(tickets, SINCE, UNTIL):
        if t.organisation_id is not None:
            counts[t.organisation_id] = counts.get(t.organisation_id, 0) + 1
    expected = sorted(({"domain": orgs[i].domain, "name": orgs[i].name, "sector": orgs[i].sector, "tickets": n} for i, n in counts.items()),
                      key=lambda o: (-o["tickets"], o["domain"]))
    with many.connect() as c:
        assert organisations(c, SINCE, UNTIL) == expected
        assert organisations(c, SINCE, UNTIL, limit=2) == expected[:2]


@pytest.mark.parametrize("since, until", [(SINCE, UNTIL), (None, None), (UNTIL + timedelta(days=400), None)])
def test_times_match_percentiles_of_the_stored_measures(many: Engine, since: datetime | None, until: datetime | None) -> None:
    tickets = _in(_stored(many)[0], since, until)
    expected: dict[str, Any] = {}
    for name, column in TIME_COLUMNS.items():
        values = [getattr(t, column.name) for t in tickets if getattr(t, column.name) is not None]
        expected[name] = {"median": _round(_percentile(values, 0.5), 3600), "p90": _round(_percentile(values, 0.9), 3600), "n": len(values)}
    for kind in ("first_response", "resolution"):
        measured = [getattr(t, f"{kind}_met") for t in tickets if getattr(t, f"{kind}_met") is not None]
        expected[f"sla_{kind}_met_pct"] = round(100.0 * sum(measured) / len(measured), 1) if measured else None
    expected["reopened"] = sum(1 for t in tickets if t.reopened_count > 0)
    with many.connect() as c:
        assert times(c, since, until) == expected


@pytest.mark.parametrize("until", [UNTIL, SINCE, datetime(2026, 8, 1, tzinfo=UTC), datetime(2027, 6, 1, tzinfo=UTC)])
def test_backlog_matches_the_stored_tickets_open_at_the_end(many: Engine, until: datetime) -> None:
    open_at_end = [t for t in _stored(many)[0] if t.created_at < until and (t.resolved_at is None or t.resolved_at >= until)]
    ages = [(until - t.created_at).total_seconds() for t in open_at_end]
    expected = {"open": len(open_at_end), "unassigned": sum(1 for t in open_at_end if t.assignee is None),
                "age_median_days": _round(_percentile(ages, 0.5), 86400), "age_p90_days": _round(_percentile(ages, 0.9), 86400),
                "oldest_days": _round(max(ages, default=None), 86400)}
    with many.connect() as c:
        assert backlog(c, until) == expected


@pytest.mark.parametrize("since, until", [(SINCE, UNTIL), (None, UNTIL), (UNTIL + timedelta(days=400), None)])
def test_enquirers_match_the_contacts_of_the_stored_tickets(many: Engine, since: datetime | None, until: datetime | None) -> None:
    tickets, _, contacts = _stored(many)
    wrote = {t.contact_id for t in _in(tickets, since, until) if t.contact_id is not None}
    new = {i for i in wrote if since is None or contacts[i].created_at >= since}
    with many.connect() as c:
        assert enquirers(c, since, until) == {"enquirers": len(wrote), "new": len(new), "returning": len(wrote - new)}
