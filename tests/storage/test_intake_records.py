"""Storage records the pipeline's decisions whole: a new ticket, a reply, an automated mail, a duplicate."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from storage.errors import LostRace
from storage.intake_records import Arrival, Automated, Duplicate, Labels, NewTicket, Reply, Route, Threading
from storage.intake_store import EVENT, MESSAGE, TICKET, IntakeStore
from storage.models import OUTBOX, utcnow

NEW = Threading(None, "new", "no earlier message")


def _arrival(external_id: str = "m1", delivery: str = "d1", sender: str = "ana@ministry.example") -> Arrival:
    return Arrival(channel="email", external_id=external_id, delivery_id=delivery, sender_address=sender, sender_name="Ana",
                   subject="Validating our release", text="How do I validate?", new_text="How do I validate?",
                   content_hash="a" * 64, received_at=utcnow())


def _enquiry(external_id: str = "m1", delivery: str = "d1", docs_gap: bool | None = None) -> NewTicket:
    labels = Labels("tools", 0.8, "government", 0.9, "en", 0.99, False, {"type": {"value": "tools"}},
                    organisation="ministry.example", organisation_name="Ministry")
    route = Route("helpdesk", "normal", "default", {"team": "helpdesk", "rule": "default"})
    return NewTicket(_arrival(external_id, delivery), NEW, labels, route, utcnow(), docs_gap=docs_gap)


def _kinds(engine: Engine) -> list[str]:
    with engine.connect() as c:
        return sorted(c.execute(select(EVENT.c.kind)).scalars())


def test_given_a_new_enquiry_then_one_transaction_writes_ticket_message_events_and_assignment(engine: Engine) -> None:
    store = IntakeStore(engine)

    with store.transaction() as tx:
        opened = tx.open_ticket(_enquiry(), utcnow())

    with engine.connect() as c:
        ticket = c.execute(select(TICKET).where(TICKET.c.id == opened.ticket_id)).one()
        message = c.execute(select(MESSAGE).where(MESSAGE.c.id == opened.message_pk)).one()
        outbox_keys = list(c.execute(select(OUTBOX.c.key)).scalars())
    assert (ticket.type, ticket.sector, ticket.team, ticket.status) == ("tools", "government", "helpdesk", "new")
    assert (message.ticket_id, message.kind, message.thread_rule) == (opened.ticket_id, "enquiry", "new")
    assert _kinds(engine) == ["routed", "ticket_created"]
    assert outbox_keys == [opened.assign_key]


def test_given_a_docs_gap_then_it_is_counted(engine: Engine) -> None:
    with IntakeStore(engine).transaction() as tx:
        tx.open_ticket(_enquiry(docs_gap=True), utcnow())

    assert _kinds(engine) == ["docs_gap", "routed", "ticket_created"]


def test_given_the_same_message_opened_twice_then_the_second_loses_and_writes_nothing(engine: Engine) -> None:
    store = IntakeStore(engine)
    with store.transaction() as tx:
        tx.open_ticket(_enquiry(delivery="d1"), utcnow())

    with pytest.raises(LostRace):
        with store.transaction() as tx:
            tx.open_ticket(_enquiry(delivery="d2"), utcnow())

    with engine.connect() as c:
        assert c.execute(select(TICKET.c.id)).scalars().all() == [1]


def test_given_a_reply_on_a_resolved_ticket_then_it_is_stored_and_the_ticket_reopens(engine: Engine) -> None:
    store = IntakeStore(engine)
    with store.transaction() as tx:
        opened = tx.open_ticket(_enquiry(), utcnow())
        tx.update_ticket(opened.ticket_id, {"status": "resolved"})

    with store.transaction() as tx:
        message_pk = tx.record_reply(Reply(_arrival("m2"), Threading(opened.ticket_id, "references", "In-Reply-To m1"), "en"), utcnow())
        tx.reopen_for_reply(opened.ticket_id, message_pk, "email", utcnow())

    with engine.connect() as c:
        ticket = c.execute(select(TICKET).where(TICKET.c.id == opened.ticket_id)).one()
    assert (ticket.status, ticket.reopened_count) == ("open", 1)
    assert _kinds(engine) == ["reopened", "routed", "threaded", "ticket_created"]


def test_given_an_automated_mail_then_it_is_stored_without_a_contact(engine: Engine) -> None:
    with IntakeStore(engine).transaction() as tx:
        message_pk = tx.record_automated(Automated(_arrival(sender="mailer-daemon@mx.example"), NEW, "bounce", "a DSN"), utcnow())

    with engine.connect() as c:
        message = c.execute(select(MESSAGE).where(MESSAGE.c.id == message_pk)).one()
    assert (message.kind, message.contact_id, message.automated_kind) == ("automated", None, "bounce")
    assert _kinds(engine) == ["automated"]


def test_given_a_copy_counted_twice_then_it_counts_once(engine: Engine) -> None:
    store = IntakeStore(engine)
    with store.transaction() as tx:
        opened = tx.open_ticket(_enquiry(), utcnow())
    copy = Duplicate("duplicate:copy-1", "email", opened.ticket_id, opened.message_pk)

    with store.transaction() as tx:
        first = tx.record_duplicate(copy, utcnow())
    with store.transaction() as tx:
        second = tx.record_duplicate(copy, utcnow())

    assert (first, second) == (True, False)
