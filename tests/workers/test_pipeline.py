from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from config.settings import Settings
from intake.queue import InflightRegistry
from storage.intake_store import EVENT, MESSAGE, TICKET
from tests.factories import make_message
from workers.services import build_services
from workers.intake.pipeline import Pipeline
from workers.errors import ParentInFlight
@pytest.fixture
def pipeline(settings: Settings, broker, engine: Engine) -> Pipeline:
    return build_services(settings, broker, engine).pipeline


def _tickets(engine: Engine) -> list:
    with engine.connect() as c:
        return list(c.execute(select(TICKET).order_by(TICKET.c.id)))


def test_new_enquiry_becomes_a_classified_routed_ticket(pipeline: Pipeline, engine: Engine) -> None:
    text = "Hello, our published tender data has validation errors for tender/value and some award dates are missing. Can you help?"
    outcome = pipeline.process(make_message(sender="ana@finance.gov.uk", text=text), "d1")
    assert outcome.kind == "created"
    assert outcome.effects == (f"assign:{outcome.ticket_id}",)
    [ticket] = _tickets(engine)
    assert ticket.type == "data_quality"
    assert ticket.sector == "government"
    assert ticket.language == "en"
    assert ticket.team == "data"
    assert ticket.priority == "high"
    assert ticket.routing_rule == "government-data"
    assert ticket.classification["sector"]["reasons"][0].startswith("domain finance.gov.uk")
    assert ticket.routing["reasons"]
    with engine.connect() as c:
        kinds = sorted(r.kind for r in c.execute(select(EVENT)))
    assert kinds == ["routed", "ticket_created"]


def test_same_message_twice_is_one_ticket_and_one_duplicate(pipeline: Pipeline, engine: Engine) -> None:
    pipeline.process(make_message(), "d1")
    outcome = pipeline.process(make_message().model_copy(update={"source": "imap:other-folder"}), "d2")
    assert outcome.kind == "duplicate"
    assert len(_tickets(engine)) == 1
    with engine.connect() as c:
        assert [r.kind for r in c.execute(select(EVENT).where(EVENT.c.kind == "duplicate"))] == ["duplicate"]


def test_the_same_item_read_again_from_its_source_is_no_duplicate(pipeline: Pipeline, engine: Engine) -> None:
    # An adapter restarting re-reads an overlap window: same message, same mailbox item, a new queue delivery.
    pipeline.process(make_message(), "d1")
    assert pipeline.process(make_message(), "d2").kind == "redelivered"
    with engine.connect() as c:
        assert not list(c.execute(select(EVENT).where(EVENT.c.kind == "duplicate")))


def test_redelivery_of_the_same_delivery_counts_nothing(pipeline: Pipeline, engine: Engine) -> None:
    # A worker that stored the message but died before acking gets it again under the same delivery id.
    pipeline.process(make_message(), "d1")
    assert pipeline.process(make_message(), "d1").kind == "redelivered"
    with engine.connect() as c:
        assert not list(c.execute(select(EVENT).where(EVENT.c.kind == "duplicate")))


def test_reused_message_id_with_other_content_is_kept(pipeline: Pipeline, engine: Engine) -> None:
    pipeline.process(make_message("same@x.org"), "d1")
    outcome = pipeline.process(make_message("same@x.org", text="An entirely different question about training."), "d2")
    assert outcome.kind == "created"
    assert len(_tickets(engine)) == 2


def test_reply_joins_its_parent_and_reopens_a_resolved_ticket(pipeline: Pipeline, engine: Engine) -> None:
    parent = pipeline.process(make_message("p@x.org"), "d1")
    with engine.begin() as c:
        c.execute(TICKET.update().values(status="resolved"))
    reply = pipeline.process(make_message("r@x.org", subject="Re: Validation errors", in_reply_to=("p@x.org",)), "d2")
    assert reply.kind == "threaded"
    assert reply.ticket_id == parent.ticket_id
    [ticket] = _tickets(engine)
    assert ticket.status == "open", "counted in the report's reopened tickets"
    assert ticket.reopened_count == 1, "counted in the report's reopened tickets"
    with engine.connect() as c:
        row = c.execute(select(MESSAGE).where(MESSAGE.c.external_id == "r@x.org")).one()
    assert row.kind == "reply"
    assert row.thread_rule == "references"
    assert "In-Reply-To" in row.thread_reason


def test_reply_waits_while_its_parent_is_in_flight(pipeline: Pipeline, engine: Engine, broker, settings: Settings) -> None:
    inflight = InflightRegistry(broker.client, settings.redis_namespace)
    inflight.mark("email", ["p@x.org"])
    reply = make_message("r@x.org", in_reply_to=("p@x.org",))
    with pytest.raises(ParentInFlight):
        pipeline.process(reply, "d1")
    assert not _tickets(engine)  # the attempt left nothing behind
    pipeline.process(make_message("p@x.org"), "d2")  # the parent lands and clears its mark
    assert pipeline.process(reply, "d1").kind == "threaded"


def test_reply_stops_waiting_when_told(pipeline: Pipeline, broker, settings: Settings) -> None:
    InflightRegistry(broker.client, settings.redis_namespace).mark("email", ["lost@x.org"])
    outcome = pipeline.process(make_message("r@x.org", in_reply_to=("lost@x.org",)), "d1", wait_for_parent=False)
    assert outcome.kind == "created"


def test_automated_mail_opens_no_ticket_but_attaches_when_it_can(pipeline: Pipeline, engine: Engine) -> None:
    parent = pipeline.process(make_message("p@x.org"), "d1")
    auto = pipeline.process(
        make_message("ooo@x.org", subject="Out of office", in_reply_to=("p@x.org",), signals={"auto-submitted": "auto-replied"}), "d2"
    )
    bounce = pipeline.process(make_message("b@x.org", sender="mailer-daemon@mx.x.org", subject="Undelivered"), "d3")
    assert (auto.kind, auto.ticket_id) == ("automated", parent.ticket_id)
    assert (bounce.kind, bounce.ticket_id) == ("automated", None)
    assert len(_tickets(engine)) == 1


def test_subject_token_threads_a_participant_only(pipeline: Pipeline, engine: Engine) -> None:
    first = pipeline.process(make_message("p@x.org"), "d1")
    token = f"[HD-{first.ticket_id}]"
    same = pipeline.process(make_message("s@x.org", subject=f"More data {token}"), "d2")
    stranger = pipeline.process(make_message("t@x.org", sender="eve@gmail.com", subject=f"Hi {token}"), "d3")
    assert same.kind == "threaded"
    assert same.ticket_id == first.ticket_id
    assert stranger.kind == "created"
    assert stranger.ticket_id != first.ticket_id


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite's one writer leaves no such window
def test_a_parent_stored_between_the_replys_lookup_and_its_in_flight_check_is_found(settings: Settings, broker, engine: Engine) -> None:  # noqa: ANN001
    # Given a parent queued (marked in flight) that another worker stores and clears exactly while this worker,
    # having looked its parent up and not found it, asks whether it is in flight — the window two workers left
    parents_worker = build_services(settings, broker, engine).pipeline
    parent = make_message("p@x.org")

    class ParentLandsMeanwhile(InflightRegistry):
        def any_inflight(self, channel: str, ids) -> bool:  # noqa: ANN001
            if not _tickets(engine):
                parents_worker.process(parent, "d-parent")  # committed, then its mark cleared
            return super().any_inflight(channel, ids)

    registry = ParentLandsMeanwhile(broker.client, settings.redis_namespace)
    registry.mark("email", ["p@x.org"])
    pipeline = build_services(settings, broker, engine).pipeline
    pipeline.inflight = registry

    # When the reply is processed
    outcome = pipeline.process(make_message("r@x.org", in_reply_to=("p@x.org",)), "d-reply")

    # Then it continues its parent's ticket: the parent, no longer in flight, was looked for again
    [ticket] = _tickets(engine)
    assert (outcome.kind, outcome.ticket_id) == ("threaded", ticket.id)
