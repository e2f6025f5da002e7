"""Knowledge of implementations: organisations, stages, engagements — the desk operations on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, func, insert, select

from config.desk import load_desk
from config.settings import load_settings
from storage.intake_store import CONTACT, IDENTITY, ORGANISATION, TICKET
from storage.knowledge import ENG, STAGE, organisation_detail
from storage.report import full_report
from workers.outbound import cards
from workers.desk.operations import Desk
from workers.desk.knowledge import Knowledge
from workers.errors import Refused
UTC = timezone.utc
OCT = datetime(2026, 10, 1, tzinfo=UTC)


@pytest.fixture
def knowledge(engine: Engine) -> Knowledge:
    return Knowledge(engine, load_desk(load_settings(environ={})))


def _intake_ticket(engine: Engine, domain: str, *, type_: str = "mapping", subject: str = "Mapping our e-procurement fields",
                   at: datetime = OCT) -> int:
    """An organisation, contact and ticket as intake makes them from an e-mail."""
    with engine.begin() as c:
        org = c.execute(select(ORGANISATION.c.id).where(ORGANISATION.c.domain == domain)).scalar() or c.execute(
            insert(ORGANISATION).values(domain=domain, sector="government", created_at=at).returning(ORGANISATION.c.id)).scalar()
        contact = c.execute(insert(CONTACT).values(display_name="Ana Gómez", organisation_id=org, created_at=at).returning(CONTACT.c.id)).scalar()
        c.execute(insert(IDENTITY).values(contact_id=contact, channel="email", address=f"ana.{contact}@{domain}", created_at=at))
        return c.execute(insert(TICKET).values(
            status="open", subject=subject, channel="email", type=type_, sector="government", language="en", team="data",
            priority="normal", contact_id=contact, organisation_id=org, created_at=at, updated_at=at, assignment_count=0,
            paused_business_seconds=0.0, reopened_count=0).returning(TICKET.c.id)).scalar()


def _count(engine: Engine, table: object) -> int:
    with engine.connect() as c:
        return c.execute(select(func.count()).select_from(table)).scalar_one()


def test_a_stage_change_is_recorded_once_with_who(knowledge: Knowledge, engine: Engine) -> None:
    # Given an organisation the desk learns about
    knowledge.set_organisation("hacienda.gob.mx", by="ana", name="Secretaría de Hacienda", sector="government", country="mx",
                               standard="ocds", stage="scoping")
    # When its implementation moves to mapping — and the same command runs again
    first = knowledge.set_organisation("hacienda.gob.mx", by="tom", standard="ocds", stage="mapping")
    again = knowledge.set_organisation("hacienda.gob.mx", by="tom", standard="ocds", stage="mapping")
    # Then two changes are recorded (none → scoping, scoping → mapping), the second by tom
    assert first.stage_changed is True
    assert again.stage_changed is False
    detail = organisation_detail(engine, "hacienda.gob.mx")
    assert [(s.from_stage, s.to_stage, s.by) for s in detail.stage_changes] == [("scoping", "mapping", "tom"), (None, "scoping", "ana")]
    assert detail.organisation.country == "MX"
    assert detail.implementations[0].stage == "mapping"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"by": "stranger", "standard": "ocds", "stage": "scoping"}, "not on the desk"),
        ({"by": "ana", "standard": "ocds", "stage": "flying"}, "unknown stage"),
        ({"by": "ana", "standard": "xyz", "stage": "scoping"}, "unknown standard"),
        ({"by": "ana", "sector": "aliens"}, "unknown sector"),
        ({"by": "ana", "country": "Mexico"}, "two-letter"),
        ({"by": "ana", "standard": "ocds", "stage": "scoping", "urls": ("javascript:alert(1)",)}, r"not an http\(s\) URL"),
    ],
)
def test_a_refused_change_changes_nothing(knowledge: Knowledge, engine: Engine, kwargs: dict, message: str) -> None:
    with pytest.raises(Refused, match=message):
        knowledge.set_organisation("watch.org", **kwargs)
    assert _count(engine, ORGANISATION) == 0
    assert _count(engine, STAGE) == 0


def test_a_further_domain_folds_the_organisation_intake_made_of_it(knowledge: Knowledge, engine: Engine) -> None:
    # Given intake made two organisations of two domains of one ministry
    first = _intake_ticket(engine, "hacienda.gob.mx")
    second = _intake_ticket(engine, "shcp.gob.mx")
    # When staff say the second domain is the same organisation
    change = knowledge.set_organisation("hacienda.gob.mx", by="ana", add_domains=("shcp.gob.mx",))
    # Then both tickets and both people belong to it, and either domain finds it
    detail = knowledge.organisation("shcp.gob.mx")
    assert detail.organisation.id == change.organisation.id
    assert {t.id for t in detail.tickets} == {first, second}
    assert len(detail.people) == 2
    assert _count(engine, ORGANISATION) == 1


def test_engagements_are_idempotent_by_key_and_stamp_their_status(knowledge: Knowledge, engine: Engine) -> None:
    ticket = _intake_ticket(engine, "hacienda.gob.mx")
    # When the same engagement is recorded twice under one key
    record, created = knowledge.add_engagement("hacienda.gob.mx", "mapping_review", by="ana", hours=6, tickets=(ticket,), key="k1")
    repeat, created_again = knowledge.add_engagement("hacienda.gob.mx", "mapping_review", by="ana", hours=6, tickets=(ticket,), key="k1")
    # Then it exists once, linked to the ticket it came from
    assert (created, created_again) == (True, False)
    assert repeat.id == record.id
    assert record.tickets == ((ticket, "origin"),)
    assert _count(engine, ENG) == 1
    # And delivering it stamps when work started and ended; hours add up
    delivered = knowledge.update_engagement(record.id, by="tom", status="delivered", add_hours=2.5, link="https://docs.example/review")
    assert delivered.status == "delivered"
    assert delivered.hours == 8.5
    assert delivered.started_at is not None
    assert delivered.delivered_at is not None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "astrology"}, "unknown engagement kind"),
        ({"kind": "training", "hours": -1}, "hours must be"),
        ({"kind": "training", "tickets": (99999,)}, "no ticket 99999"),
        ({"kind": "training", "owner": "stranger"}, "not a member"),
    ],
)
def test_a_refused_engagement_records_nothing(knowledge: Knowledge, engine: Engine, kwargs: dict, message: str) -> None:
    kwargs = dict(kwargs)
    kind = kwargs.pop("kind")
    with pytest.raises(Refused, match=message):
        knowledge.add_engagement("watch.org", kind, by="ana", **kwargs)
    assert _count(engine, ENG) == 0
    assert _count(engine, ORGANISATION) == 0


def test_a_mapping_ticket_suggests_a_mapping_review_until_one_is_linked(knowledge: Knowledge, engine: Engine) -> None:
    mapping = _intake_ticket(engine, "hacienda.gob.mx", type_="mapping")
    _intake_ticket(engine, "hacienda.gob.mx", type_="schema", subject="What is tender/value?")
    detail = knowledge.organisation("hacienda.gob.mx")
    assert [(s.ticket.id, s.kind) for s in knowledge.suggestions(detail)] == [(mapping, "mapping_review")]
    # Nothing was created by the suggestion itself
    assert _count(engine, ENG) == 0
    knowledge.add_engagement("hacienda.gob.mx", "mapping_review", by="ana", tickets=(mapping,))
    assert knowledge.suggestions(knowledge.organisation("hacienda.gob.mx")) == []


def test_the_timeline_holds_tickets_engagements_and_stage_changes_newest_first(knowledge: Knowledge, engine: Engine) -> None:
    _intake_ticket(engine, "hacienda.gob.mx", at=OCT)
    knowledge.set_organisation("hacienda.gob.mx", by="ana", standard="ocds", stage="mapping")
    knowledge.add_engagement("hacienda.gob.mx", "training", by="ana", hours=3)
    whats = [e.what for e in knowledge.organisation("hacienda.gob.mx").timeline]
    assert whats[-1] == "ticket_opened"
    assert set(whats) == {"ticket_opened", "stage_change", "engagement_requested"}
    assert whats == sorted(whats, key=lambda w: w == "ticket_opened")  # the October ticket is the oldest


def test_the_report_counts_engagements_by_kind_and_the_stage_funnel(knowledge: Knowledge, engine: Engine) -> None:
    knowledge.set_organisation("hacienda.gob.mx", by="ana", sector="government", standard="ocds", stage="scoping")
    knowledge.set_organisation("hacienda.gob.mx", by="ana", standard="ocds", stage="publishing")
    knowledge.set_organisation("watch.org", by="ana", sector="civil_society", standard="ocds", stage="prospect")
    knowledge.add_engagement("hacienda.gob.mx", "mapping_review", by="ana", hours=6)
    knowledge.add_engagement("hacienda.gob.mx", "mapping_review", by="ana", hours=2)
    knowledge.add_engagement("watch.org", "training", by="tom", hours=3, status="delivered")
    with engine.connect() as c:
        data = full_report(c, None, datetime.now(UTC) + timedelta(minutes=1))
    assert data["engagements"]["by_kind"] == {"mapping_review": {"count": 2, "hours": 8.0}, "training": {"count": 1, "hours": 3.0}}
    assert data["engagements"]["by_kind_sector"]["training"] == {"civil_society": {"count": 1, "hours": 3.0}}
    assert data["engagements"]["delivered"] == {"count": 1, "hours": 3.0}
    assert data["implementations"] == {"ocds": {"publishing": 1, "prospect": 1}}
    assert data["stage_changes"] == {"ocds": {"scoping": 1, "publishing": 1, "prospect": 1}}
    # A period that ended before all this saw none of it
    with engine.connect() as c:
        before = full_report(c, OCT - timedelta(days=31), OCT)
    assert before["engagements"]["by_kind"] == {}
    assert before["implementations"] == {}


def test_the_card_names_the_stage_and_suggests_the_engagement(knowledge: Knowledge, engine: Engine) -> None:
    ticket = _intake_ticket(engine, "hacienda.gob.mx", type_="mapping")
    knowledge.set_organisation("hacienda.gob.mx", by="ana", standard="ocds", stage="mapping")
    desk = Desk(knowledge.desk)
    with engine.connect() as c:
        row, enquirer = cards.load(c, ticket)
    text, blocks = cards.card(row, desk, enquirer)
    rendered = str(blocks)
    assert "ocds _mapping_" in rendered
    assert f"helpdesk engagement add hacienda.gob.mx --kind mapping_review --ticket HD-{ticket}" in rendered
    _text, org_blocks = cards.organisation_card(knowledge.organisation("hacienda.gob.mx"), [], "HD")
    assert "ocds *mapping*" in str(org_blocks)
