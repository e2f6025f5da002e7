"""Benchmark: management-information reports over 1,000,000 tickets in PostgreSQL.

    python bench/report.py [--tickets 1000000] [--admin-url postgresql://postgres@127.0.0.1/test]

Creates a database of its own, migrates it, generates tickets over two years
(5,000 organisations, 200,000 enquirers, measured response and resolution
times, reopened and open tickets), then times each report section for one
year and for one month (best of three). Target (issue #18): < 200 ms each, as
the web dashboard draws every section on each visit; goal: < 50 ms. Drops the
database.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from storage import schema  # noqa: E402
from storage.db import create_db_engine  # noqa: E402
from storage.report import SECTIONS, prepare  # noqa: E402

TARGET_MS = 200  # each section, year and month (issue #18)
GOAL_MS = 50

GENERATE = """
INSERT INTO organisation (domain, name, sector, created_at)
SELECT 'org' || i || '.example', 'Organisation ' || i,
       (ARRAY['government','civil_society','private_sector','academia','multilateral_donor','media','individual'])[1 + i % 7], now()
FROM generate_series(1, 5000) AS i;

INSERT INTO contact (display_name, organisation_id, created_at)
SELECT 'Enquirer ' || i, 1 + (i % 5000), now() FROM generate_series(1, 200000) AS i;

INSERT INTO ticket (status, subject, channel, contact_id, organisation_id, type, type_confidence, sector, sector_confidence,
                    language, language_confidence, needs_triage, team, assignee, priority, routing_rule, assignment_count,
                    created_at, updated_at, resolved_at, paused_business_seconds, first_response_at,
                    first_response_seconds, first_response_business_seconds, first_response_met,
                    resolution_seconds, resolution_business_seconds, resolution_met, reopened_count)
SELECT CASE WHEN i % 20 = 0 THEN 'open' WHEN i % 37 = 0 THEN 'pending' ELSE 'resolved' END,
       'Enquiry ' || i,
       (ARRAY['email','email','email','slack','x','web'])[1 + i % 6],
       1 + (i * 7919) % 200000,
       1 + (i * 104729) % 5000,
       (ARRAY['schema','data_quality','tools','publication','mapping','scoping','training','policy','documentation',
              'standard_change','data_use','other'])[1 + (i * 31) % 12], 0.8,
       (ARRAY['government','civil_society','private_sector','academia','multilateral_donor','media','individual'])[1 + (i * 13) % 7], 0.9,
       (ARRAY['en','en','en','es','fr','pt'])[1 + (i * 17) % 6], 0.95, (i % 50 = 0),
       (ARRAY['general','data','tech','engagement','latam'])[1 + (i * 11) % 5],
       CASE WHEN i % 20 = 0 AND i % 3 = 0 THEN NULL ELSE 'member' || (i % 12) END,
       (ARRAY['low','normal','normal','high'])[1 + i % 4], 'rule', 1,
       ts, ts,
       CASE WHEN i % 20 <> 0 AND i % 37 <> 0 THEN ts + make_interval(hours => (2 + i % 300)::int) END,
       0, ts + make_interval(mins => (30 + i % 2000)::int),
       60.0 * (30 + (i % 2000)), 60.0 * (15 + (i % 900)), (i % 10 < 8),
       CASE WHEN i % 20 <> 0 AND i % 37 <> 0 THEN 3600.0 * (2 + (i % 300)) END,
       CASE WHEN i % 20 <> 0 AND i % 37 <> 0 THEN 3600.0 * (1 + (i % 120)) END,
       CASE WHEN i % 20 <> 0 AND i % 37 <> 0 THEN (i % 10 < 7) END,
       CASE WHEN i % 45 = 0 THEN 1 ELSE 0 END
FROM (SELECT i, timestamptz '2025-01-01 00:00+00' + make_interval(secs => (i::float8 * 63072000.0 / :n)) AS ts
      FROM generate_series(1::bigint, :n) AS i) AS g;
UPDATE contact SET created_at = f.first_at
FROM (SELECT contact_id, min(created_at) AS first_at FROM ticket GROUP BY contact_id) AS f WHERE f.contact_id = contact.id;
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    console = Console()
    name = f"hdbench_report_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = args.admin_url.rsplit("/", 1)[0] + f"/{name}"
    engine = create_db_engine(url)
    try:
        schema.upgrade(engine)
        started = time.perf_counter()
        with console.status(f"generating {args.tickets:,} tickets"):
            with engine.begin() as c:
                for statement in GENERATE.split(";"):
                    if statement.strip():
                        c.execute(text(statement), {"n": args.tickets})
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                c.execute(text("VACUUM ANALYZE"))  # visibility map for index-only scans, fresh statistics
        console.print(f"generated {args.tickets:,} tickets in {time.perf_counter() - started:.0f} s")
        periods = {
            "year 2025": (datetime(2025, 1, 1, tzinfo=timezone.utc), datetime(2026, 1, 1, tzinfo=timezone.utc)),
            "month 2025-10": (datetime(2025, 10, 1, tzinfo=timezone.utc), datetime(2025, 11, 1, tzinfo=timezone.utc)),
        }
        table = Table(title=f"Report sections over {args.tickets:,} tickets (PostgreSQL, best of 3)", title_justify="left")
        table.add_column("section")
        for period in periods:
            table.add_column(f"{period} (ms)", justify="right")
        table.add_column(f"< {TARGET_MS} ms")
        worst = 0.0
        for section, run in SECTIONS.items():
            bests = [min(_time(engine, run, since, until) for _ in range(3)) * 1000 for since, until in periods.values()]
            worst = max(worst, *bests)
            table.add_row(section, *(f"{ms:,.0f}" for ms in bests), _verdict(max(bests) < TARGET_MS))
        console.print(table)
        console.print(f"slowest section: {worst:,.0f} ms — target < {TARGET_MS} ms each: {_verdict(worst < TARGET_MS)}; "
                      f"goal < {GOAL_MS} ms: {_verdict(worst < GOAL_MS)}")
    finally:
        engine.dispose()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _verdict(met: bool) -> str:
    return "met" if met else "not met"


def _time(engine, run, since, until) -> float:  # noqa: ANN001
    with engine.connect() as c:
        started = time.perf_counter()
        prepare(c)
        run(c, since, until)
        return time.perf_counter() - started


if __name__ == "__main__":
    main()
