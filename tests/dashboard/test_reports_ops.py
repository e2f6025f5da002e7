"""Reports as server-drawn SVG charts with tables and CSV; the operations page and dead-letter replay."""

from __future__ import annotations

import csv
import io
import re

import dramatiq
import pytest
from sqlalchemy import select

from intake.queue import INTAKE_QUEUE, PROCESS_ACTOR
from storage.intake_store import QUARANTINE
from storage.models import utcnow
from storage import audit
from tests.dashboard.conftest import Site, csrf
from tests.factories import make_message

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


def test_given_tickets_this_month_then_the_report_draws_charts_and_tables(site: Site) -> None:
    for i in range(3):
        site.open_ticket(f"r{i}@x", sender=f"p{i}@finance.gov.uk", received_at=utcnow())
    client = site.sign_in("maria")

    page = client.get("/reports", params={"month": f"{utcnow():%Y-%m}"})

    assert page.status_code == 200
    assert page.text.count('<svg class="chart"') >= 8
    assert "Tickets by month and type" in page.text
    assert "SLA met" in page.text
    assert re.search(r'<div class="muted">Tickets</div><div class="value">3</div>', page.text)
    assert "<script" not in page.text


def test_the_csv_download_has_the_table_and_neutralises_formulas(site: Site) -> None:
    site.open_ticket("c1@x", subject="=HYPERLINK(\"http://evil.example\")", received_at=utcnow())
    client = site.sign_in("maria")

    response = client.get("/reports.csv", params={"table": "volume_by_channel", "month": f"{utcnow():%Y-%m}"})
    missing = client.get("/reports.csv", params={"table": "nope"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0][0] == "channel"
    assert rows[1][0] == "email"
    assert rows[1][-1] == "1"
    assert missing.status_code == 404


def test_a_bad_period_is_named_and_the_default_shown(site: Site) -> None:
    page = site.sign_in("maria").get("/reports", params={"since": "yesterday"})
    assert page.status_code == 200
    assert "give dates as YYYY-MM-DD" in page.text


def test_an_operator_sees_queues_and_replays_a_dead_letter_but_a_member_may_not_replay(site: Site) -> None:
    broker = site.runtime.broker
    message = dramatiq.Message(queue_name=INTAKE_QUEUE, actor_name=PROCESS_ACTOR, args=(make_message("dl1@x").to_json(),), kwargs={}, options={})
    with site.runtime.engine.begin() as c:
        c.execute(QUARANTINE.insert().values(key="dl:test", kind="dead_letter", status="open", queue=INTAKE_QUEUE, message_id=message.message_id,
                                             reason="boom", detail="Traceback: boom", payload=message.asdict(), created_at=utcnow()))
    operator = site.sign_in("olu")
    page = operator.get("/ops")
    assert page.status_code == 200
    assert "intake" in page.text
    assert "boom" in page.text
    letter = operator.get("/ops/letters/1")
    token = re.search(r'name="csrf_token" value="([^"]+)"', letter.text).group(1)
    attempt = re.search(r'name="attempt" value="([^"]+)"', letter.text).group(1)

    member = site.sign_in("tom")
    refused = member.post("/ops/letters/1/replay", data={"csrf_token": csrf(member, "/tickets"), "attempt": attempt})
    replayed = operator.post("/ops/letters/1/replay", data={"csrf_token": token, "attempt": attempt})

    assert refused.status_code == 403
    assert [(e.actor, e.action) for e in audit.entries(site.runtime.engine, outcome="refused")] == [("tom", "dlq.replay")]
    assert replayed.status_code == 303
    with site.runtime.engine.connect() as c:
        assert c.execute(select(QUARANTINE.c.status)).scalar() == "replayed"
    assert broker.client.hlen(f"{site.runtime.settings.redis_namespace}:{INTAKE_QUEUE}.msgs") == 1
