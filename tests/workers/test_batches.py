"""Batches: messages an adapter read together, stored in one transaction, each as it would be alone.

Pipeline level on SQLite and PostgreSQL (``Pipeline.process_batch``), then the actor over a real Redis and a
real dramatiq worker: what the batch cannot store goes again alone, and is handled as a single message is.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import dramatiq
import pytest
from sqlalchemy import Engine, func, select

from config.queues import INTAKE_QUEUE, PROCESS_BATCH_ACTOR
from config.settings import Settings
from intake.queue import InflightRegistry, QueueSink
from ops.runtime import Runtime, prepare_worker
from storage.intake_store import CONTACT, EVENT, MESSAGE, QUARANTINE, TICKET, IntakeTx
from storage.driver import Hot
from storage.events import event_row
from storage.models import OUTBOX
from tests.factories import make_message
from workers.intake.pipeline import Pipeline
from workers.services import build_services


@pytest.fixture
def pipeline(settings: Settings, broker, engine: Engine) -> Pipeline:  # noqa: ANN001
    return build_services(settings, broker, engine).pipeline


def _count(engine: Engine, table) -> int:  # noqa: ANN001
    with engine.connect() as c:
        return c.execute(select(func.count()).select_from(table)).scalar_one()


def _enquiry(n: int, **extra: object):  # noqa: ANN202
    return make_message(f"b{n}@x.org", sender=f"person{n}@ucl.ac.uk", subject=f"Question {n} about tender/value", **extra)


def test_a_batch_stores_each_message_as_it_would_alone(pipeline: Pipeline, engine: Engine) -> None:
    # Given a batch: two enquiries, an exact repeat of the first, and a reply to the second
    batch = [(_enquiry(1), "q:0"), (_enquiry(2), "q:1"), (_enquiry(1).model_copy(update={"source": "imap:other"}), "q:2"),
             (make_message("r2@x.org", sender="person2@ucl.ac.uk", subject="Re: Question 2", in_reply_to=("b2@x.org",)), "q:3")]
    result = pipeline.process_batch(batch)
    # Then the kinds are those of one message at a time, and the reply is on its parent's ticket
    assert [result.outcomes[i].kind for i in range(4)] == ["created", "created", "duplicate", "threaded"]
    assert result.outcomes[3].ticket_id == result.outcomes[1].ticket_id


def test_a_batch_records_one_assignment_to_do_per_new_ticket(pipeline: Pipeline, engine: Engine) -> None:
    result = pipeline.process_batch([(_enquiry(1), "q:0"), (_enquiry(2), "q:1")])
    assert sorted(result.effects) == sorted(f"assign:{result.outcomes[i].ticket_id}" for i in (0, 1))


def test_a_batch_delivered_again_stores_nothing_new(pipeline: Pipeline, engine: Engine) -> None:
    # A worker that committed the batch but died before acknowledging it gets it again, same delivery ids.
    batch = [(_enquiry(1), "q:0"), (_enquiry(2), "q:1")]
    pipeline.process_batch(batch)
    again = pipeline.process_batch(batch)
    assert {outcome.kind for outcome in again.outcomes.values()} == {"redelivered"}
    assert (_count(engine, TICKET), _count(engine, MESSAGE), _count(engine, OUTBOX)) == (2, 2, 2)


def test_a_repeat_of_a_message_stored_before_is_not_classified_again(pipeline: Pipeline, engine: Engine,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an enquiry stored before, and a batch with a copy of it (another mailbox item), a message reusing its id
    # for other content, and a new enquiry
    first = pipeline.process_batch([(_enquiry(1), "q:0")]).outcomes[0]
    decided: list[str] = []
    decide = pipeline.decide
    monkeypatch.setattr(pipeline, "decide", lambda message: decided.append(message.external_id) or decide(message))
    reused = _enquiry(1, text="Another question under the same Message-ID")
    batch = [(_enquiry(1).model_copy(update={"source": "imap:other"}), "q:1"), (reused, "q:2"), (_enquiry(2), "q:3")]
    # When it is stored
    result = pipeline.process_batch(batch)
    # Then the copy is a duplicate of the stored message without being classified again; the others are decided as ever
    assert [result.outcomes[i].kind for i in range(3)] == ["duplicate", "created", "created"]
    assert result.outcomes[0].ticket_id == first.ticket_id
    assert decided == ["b1@x.org", "b2@x.org"]


def test_a_repeat_that_the_transaction_does_not_find_is_decided_there(pipeline: Pipeline, engine: Engine,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a message that the look-up before the transaction reports stored (a row erased between the two, say)
    message = _enquiry(3)
    monkeypatch.setattr(pipeline.store, "stored_content", lambda keys: {(message.channel, message.external_id, message.content_hash)})
    # When its batch is stored
    result = pipeline.process_batch([(message, "q:0")])
    # Then it is classified in the transaction and opens its ticket
    assert result.outcomes[0].kind == "created"
    with engine.connect() as c:
        assert c.execute(select(TICKET.c.type).where(TICKET.c.id == result.outcomes[0].ticket_id)).scalar() is not None


def test_a_sender_twice_in_one_batch_is_one_contact(pipeline: Pipeline, engine: Engine) -> None:
    pipeline.process_batch([(_enquiry(1), "q:0"), (_enquiry(2).model_copy(update={"sender": _enquiry(1).sender}), "q:1")])
    assert _count(engine, CONTACT) == 1


def test_a_reply_before_its_parent_in_the_batch_is_handed_back_to_wait(pipeline: Pipeline, engine: Engine, broker,  # noqa: ANN001
                                                                       settings: Settings) -> None:
    # Given a reply queued ahead of its parent (both marked in flight, as the sink marks them)
    reply = make_message("r@x.org", sender="person1@ucl.ac.uk", subject="Re: Question 1", in_reply_to=("b1@x.org",))
    InflightRegistry(broker.client, settings.redis_namespace).mark("email", ["b1@x.org", "r@x.org"])
    result = pipeline.process_batch([(reply, "q:0"), (_enquiry(1), "q:1")])
    # Then the parent is stored and the reply is handed back to wait for it, having written nothing
    assert [(left.index, left.parent_in_flight) for left in result.left] == [(0, True)]
    assert _count(engine, MESSAGE) == 1


def test_a_message_that_fails_is_undone_alone(pipeline: Pipeline, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a batch whose second message makes storage fail half-way through writing its ticket
    opened = IntakeTx.open_ticket

    def failing(tx: IntakeTx, enquiry, at):  # noqa: ANN001, ANN202
        if enquiry.arrival.external_id == "b2@x.org":
            tx.upsert_contact("email", "half-written@x.org", "", None, at)  # a write the savepoint must undo
            raise RuntimeError("the database refused this row")
        return opened(tx, enquiry, at)

    monkeypatch.setattr(IntakeTx, "open_ticket", failing)
    result = pipeline.process_batch([(_enquiry(1), "q:0"), (_enquiry(2), "q:1"), (_enquiry(3), "q:2")])
    # Then the others are stored, the failing one is handed back with its reason, and nothing of it remains
    assert sorted(result.outcomes) == [0, 2]
    assert [(left.index, left.reason) for left in result.left] == [(1, "RuntimeError: the database refused this row")]
    assert _count(engine, CONTACT) == 2


def test_a_batch_writes_its_events_and_assignments_to_do_in_one_statement_each(pipeline: Pipeline, engine: Engine,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # SQLite (one writer): the batch is one transaction, and its metric events and outbox rows are written together
    # at its end. PostgreSQL: a transaction per message, so a statement each per message.
    written: list[tuple[str, int]] = []
    execute_many = Hot.execute_many

    def spy(hot: Hot, c, rows):  # noqa: ANN001, ANN202
        written.append((hot.statement.table.name, len(rows)))
        return execute_many(hot, c, rows)

    monkeypatch.setattr(Hot, "execute_many", spy)
    result = pipeline.process_batch([(_enquiry(n), f"q:{n}") for n in range(3)])
    assert [o.kind for o in result.outcomes.values()] == ["created"] * 3
    if engine.dialect.name == "sqlite":
        assert sorted(written) == [("metric_event", 6), ("outbox", 3)]  # created and routed, one assignment each
    else:
        assert sorted(written) == [("metric_event", 2)] * 3 + [("outbox", 1)] * 3
    assert (_count(engine, EVENT), _count(engine, OUTBOX)) == (6, 3)


def _after_the_second_ticket(monkeypatch: pytest.MonkeyPatch, then: Callable[[IntakeTx, datetime], None]) -> None:
    """``then(tx, at)`` runs in the transaction right after the ticket of ``_enquiry(2)`` is opened."""
    opened = IntakeTx.open_ticket

    def open_ticket(tx: IntakeTx, enquiry, at: datetime):  # noqa: ANN001, ANN202
        done = opened(tx, enquiry, at)
        if enquiry.arrival.external_id == "b2@x.org":
            then(tx, at)
        return done

    monkeypatch.setattr(IntakeTx, "open_ticket", open_ticket)


def test_a_message_undone_alone_leaves_none_of_the_rows_it_had_yet_to_write(pipeline: Pipeline, engine: Engine,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a batch whose second message fails after its ticket recorded its events and its assignment to do
    def fail(tx: IntakeTx, at: datetime) -> None:
        tx.add_events([event_row("undone:b2", "docs_gap", None, at, {}, "email")])  # keys no later row reuses
        tx.add_outbox("undone:b2", "assign", None, {}, at)
        raise RuntimeError("something after the ticket failed")

    _after_the_second_ticket(monkeypatch, fail)
    result = pipeline.process_batch([(_enquiry(1), "q:0"), (_enquiry(2), "q:1"), (_enquiry(3), "q:2")])
    # Then the others are stored with their rows, and none of the failed message's rows was written
    assert sorted(result.outcomes) == [0, 2]
    tickets = {result.outcomes[i].ticket_id for i in (0, 2)}
    with engine.connect() as c:
        assert {r.ticket_id for r in c.execute(select(EVENT.c.ticket_id))} == tickets
        assert {r.key for r in c.execute(select(OUTBOX.c.key))} == {f"assign:{t}" for t in tickets}
        assert c.execute(select(func.count()).select_from(EVENT).where(EVENT.c.key == "undone:b2")).scalar_one() == 0


def test_an_event_row_the_database_refuses_fails_its_message_alone(pipeline: Pipeline, engine: Engine,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a batch whose second message records an event the database refuses (a ticket that does not exist): the
    # refusal comes when the batch's rows are written together, after every message was stored
    _after_the_second_ticket(monkeypatch, lambda tx, at: tx.add_events([event_row("bad:1", "routed", 10_000_000, at, {}, "email")]))
    result = pipeline.process_batch([(_enquiry(1), "q:0"), (_enquiry(2), "q:1"), (_enquiry(3), "q:2")])
    # Then it is handed back alone, with the database's reason, and the others are stored
    assert sorted(result.outcomes) == [0, 2]
    assert [left.index for left in result.left] == [1]
    assert "IntegrityError" in result.left[0].reason
    assert (_count(engine, TICKET), _count(engine, OUTBOX)) == (2, 2)


def test_an_outage_fails_the_whole_batch_which_stores_each_message_once_when_delivered_again(
        pipeline: Pipeline, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    opened = IntakeTx.open_ticket
    down = {"b2@x.org"}

    def failing(tx: IntakeTx, enquiry, at):  # noqa: ANN001, ANN202
        if enquiry.arrival.external_id in down:
            raise ConnectionError("database gone")
        return opened(tx, enquiry, at)

    monkeypatch.setattr(IntakeTx, "open_ticket", failing)
    batch = [(_enquiry(1), "q:0"), (_enquiry(2), "q:1"), (_enquiry(3), "q:2")]
    with pytest.raises(ConnectionError):
        pipeline.process_batch(batch, fatal=lambda exc: isinstance(exc, ConnectionError))
    down.clear()  # the database is back: the queue delivers the batch again
    pipeline.process_batch(batch)
    assert (_count(engine, MESSAGE), _count(engine, TICKET)) == (3, 3)


def test_an_outage_undoes_what_shares_its_transaction(pipeline: Pipeline, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    # SQLite (one writer): the batch is one transaction, so nothing stays. PostgreSQL: a transaction per message,
    # so the message before the failure stays (and is recognised by its delivery id when the batch comes again).
    opened = IntakeTx.open_ticket

    def down(tx: IntakeTx, enquiry, at):  # noqa: ANN001, ANN202
        if enquiry.arrival.external_id == "b2@x.org":
            raise ConnectionError("database gone")
        return opened(tx, enquiry, at)

    monkeypatch.setattr(IntakeTx, "open_ticket", down)
    with pytest.raises(ConnectionError):
        pipeline.process_batch([(_enquiry(1), "q:0"), (_enquiry(2), "q:1")], fatal=lambda exc: isinstance(exc, ConnectionError))
    assert _count(engine, MESSAGE) == {"sqlite": 0, "postgresql": 1}[engine.dialect.name]


# -- the actor, over a real Redis and a real worker ------------------------------------------------------


def _drain(runtime: Runtime) -> None:
    worker = dramatiq.Worker(runtime.broker, worker_threads=2, queues={INTAKE_QUEUE})
    worker.start()
    try:
        runtime.broker.join(INTAKE_QUEUE, timeout=60_000)
        worker.join()
    finally:
        worker.stop()


def test_a_queued_batch_is_stored_by_the_worker_and_its_marks_cleared(settings: Settings, engine: Engine) -> None:
    # Given 60 messages put together (two batches), among them a reply queued before its parent
    messages = [_enquiry(n) for n in range(59)]
    messages.insert(10, make_message("late-reply@x.org", sender="person40@ucl.ac.uk", subject="Re: Question 40",
                                     in_reply_to=("b40@x.org",)))
    with Runtime(settings) as runtime:
        prepare_worker(runtime)
        QueueSink(runtime.broker, runtime.inflight).put_many(messages)
        # When a worker drains the queue
        _drain(runtime)
        marks = list(runtime.broker.client.scan_iter(match=f"{settings.redis_namespace}:inflight:*"))
    # Then every message is stored once, the reply on its parent's ticket, and nothing is left marked in flight
    with engine.connect() as c:
        tickets = dict(c.execute(select(MESSAGE.c.external_id, MESSAGE.c.ticket_id)).all())
    assert len(tickets) == 60
    assert tickets["late-reply@x.org"] == tickets["b40@x.org"]
    assert marks == []


def test_an_undecodable_message_in_a_batch_is_dead_lettered_alone(settings: Settings, engine: Engine) -> None:
    with Runtime(settings) as runtime:
        prepare_worker(runtime)
        runtime.broker.enqueue(dramatiq.Message(queue_name=INTAKE_QUEUE, actor_name=PROCESS_BATCH_ACTOR,
                                                args=(_enquiry(1).to_json(), "{not json", _enquiry(2).to_json()),
                                                kwargs={}, options={}))
        _drain(runtime)
    with engine.connect() as c:
        stored = sorted(c.execute(select(MESSAGE.c.external_id)).scalars())
        dead = [r.reason for r in c.execute(select(QUARANTINE))]
    assert stored == ["b1@x.org", "b2@x.org"]
    assert len(dead) == 1


def test_a_batch_leaves_its_metric_events(settings: Settings, engine: Engine) -> None:
    with Runtime(settings) as runtime:
        prepare_worker(runtime)
        QueueSink(runtime.broker, runtime.inflight).put_many([_enquiry(1), _enquiry(2)])
        _drain(runtime)
    with engine.connect() as c:
        created = c.execute(select(func.count()).select_from(EVENT).where(EVENT.c.kind == "ticket_created")).scalar_one()
    assert created == 2


# -- the sink: what travels together ----------------------------------------------------------------------


def test_batches_keep_order_within_both_bounds() -> None:
    from intake.queue import batches

    assert list(batches(["a", "b", "c", "d", "e"], max_messages=2, max_chars=100)) == [["a", "b"], ["c", "d"], ["e"]]


def test_a_payload_larger_than_a_batch_travels_alone() -> None:
    from intake.queue import batches

    assert list(batches(["aa", "b" * 10, "c"], max_messages=50, max_chars=5)) == [["aa"], ["b" * 10], ["c"]]


def _queued(runtime: Runtime) -> list[tuple[str, int]]:
    """(actor, number of messages) of each queued message, in order."""
    client = runtime.broker.client
    ids = client.lrange(f"{runtime.broker.namespace}:{INTAKE_QUEUE}", 0, -1)
    found = []
    for raw in client.hmget(f"{runtime.broker.namespace}:{INTAKE_QUEUE}.msgs", ids) if ids else []:
        message = dramatiq.Message.decode(raw)
        found.append((message.actor_name, len(message.args)))
    return sorted(found)


def test_puts_inside_batched_travel_together_when_the_block_ends(settings: Settings) -> None:
    with Runtime(settings) as runtime:
        sink = QueueSink(runtime.broker, runtime.inflight, batch_size=3)
        with sink.batched():
            for n in range(4):
                sink.put(_enquiry(n))
            inside = _queued(runtime)  # the first three: a full batch goes at once
        after = _queued(runtime)
    assert inside == [(PROCESS_BATCH_ACTOR, 3)]
    assert after == [(PROCESS_BATCH_ACTOR, 3), ("process_inbound", 1)]


def test_a_put_outside_batched_is_queued_before_it_returns(settings: Settings) -> None:
    with Runtime(settings) as runtime:
        QueueSink(runtime.broker, runtime.inflight).put(_enquiry(1))
        assert _queued(runtime) == [("process_inbound", 1)]


def test_a_block_that_raises_queues_nothing_more(settings: Settings) -> None:
    # The adapter did not finish its batch, so it keeps its watermark and reads the items again.
    with Runtime(settings) as runtime:
        sink = QueueSink(runtime.broker, runtime.inflight)
        with pytest.raises(RuntimeError), sink.batched():
            sink.put(_enquiry(1))
            raise RuntimeError("the mailbox went away")
        assert _queued(runtime) == []


def test_messages_put_in_one_round_trip_are_handled_like_any_other(settings: Settings) -> None:
    # enqueue_many pipelines dramatiq's own enqueue script: a worker must take each message as if enqueued alone.
    from config.queues import enqueue_many

    handled: list[str] = []
    with Runtime(settings) as runtime:
        dramatiq.actor(handled.append, broker=runtime.broker, queue_name="pipelined", actor_name="note")
        enqueue_many(runtime.broker, "pipelined", "note", [("a",), ("b",), ("c",)])
        worker = dramatiq.Worker(runtime.broker, worker_threads=1, queues={"pipelined"})
        worker.start()
        try:
            runtime.broker.join("pipelined", timeout=30_000)
            worker.join()
        finally:
            worker.stop()
    assert sorted(handled) == ["a", "b", "c"]
