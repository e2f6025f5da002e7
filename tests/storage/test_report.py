"""Management information against hand-computed fixtures, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, insert

from storage.intake_store import CONTACT, ORGANISATION, TICKET
from storage.report import backlog, by_month, enquirers, full_report, organisations, times

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
    assert everything["type"]["2026-09"] == {"schema": 2} and everything["type"]["2026-11"] == {"policy": 1}


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
    assert data["open"] == 3 and data["unassigned"] == 1
    assert data["oldest_days"] == 29.0 and data["age_median_days"] == 28.0


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
    assert data["tickets"] == 5 and data["by_type"] == {"schema": 4, "tools": 1}
