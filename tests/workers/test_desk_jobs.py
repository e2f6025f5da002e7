"""Assignment, SLA clocks, escalations, digests and the scheduler — on both databases, real Redis and the local Slack."""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, select

from config.desk import load_desk
from config.settings import Settings
from storage import outbox
from storage.intake_store import EVENT
from tests.factories import make_message
from tests.intake.imap_helpers import wait_for
from tests.servers.slack import TOKEN
from tests.waiting import wait_until_drained
from tests.workers.desk_setup import MONDAY_10, TEAMS, open_ticket, read_ticket
import dramatiq

from config.queues import EFFECTS_BATCH_ACTOR, EFFECT_ACTOR, enqueue_effect, enqueue_effects
from workers.services import build_services
from workers.desk.operations import Desk, assign, set_status
from workers.errors import GroupFailed
from workers.outbound.effects import Effects
from workers.desk.scheduled import Jobs
from workers.desk.scheduler import JOB_NAMES, tick
from workers.outbound.slack import SlackPoster, make_client

@pytest.fixture
def desk(desk_settings: Settings) -> Desk:
    return Desk(load_desk(desk_settings))


@pytest.fixture
def effects(engine: Engine, desk: Desk, slack) -> Effects:  # noqa: ANN001
    return Effects(engine, desk, SlackPoster(make_client(TOKEN, slack.api_url)), clock=lambda: MONDAY_10)


def _events(engine: Engine, kind: str) -> list:
    with engine.connect() as c:
        return c.execute(select(EVENT).where(EVENT.c.kind == kind)).all()


def test_a_new_ticket_is_assigned_and_carded_through_the_worker(desk_settings, broker, engine: Engine, slack, running_worker) -> None:  # noqa: ANN001
    """End to end: pipeline → assign effect → card effect, by the real actors; repeats change nothing."""
    with running_worker(engine, desk_settings) as services:
        # Given a new ticket whose assignment has been carried out and carded
        ticket_id = services.pipeline.process(make_message("w1", sender="w1@finance.gov.uk"), "dw1").ticket_id
        enqueue_effect(broker, f"assign:{ticket_id}")
        wait_for(lambda: len(slack.fake.posted("#data")) == 1, timeout=15)
        # When the assignment and the card are delivered again
        enqueue_effect(broker, f"assign:{ticket_id}")  # a repeat: already done
        enqueue_effect(broker, f"card:{ticket_id}:1")
        wait_until_drained(broker)
    # Then the ticket is assigned once, round robin, with its SLA clock started
    ticket = read_ticket(engine, ticket_id)
    assert ticket.assignee in ("priya", "jonas")
    assert ticket.status == "open"
    assert ticket.assignment["reasons"][0].startswith("round robin")
    assert ticket.sla_policy == "standard"
    assert ticket.first_response_due_at is not None
    # And one card was posted, keyed by the card effect
    [card] = slack.fake.posted("#data")
    assert card["metadata"]["event_payload"]["key"] == f"card:{ticket_id}:1"
    assert f"HD-{ticket_id}" in card["text"]


class _Handled(dramatiq.Middleware):
    """Which actor handled which arguments, in this process (what the queues carried)."""

    def __init__(self) -> None:
        self.handled: list[tuple[str, tuple]] = []

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:  # noqa: ANN001, ARG002
        self.handled.append((message.actor_name, tuple(message.args)))


@contextlib.contextmanager
def _watched_worker(broker, running_worker, engine: Engine, desk_settings, name: str):  # noqa: ANN001, ANN202
    """The real worker, what it handles noted, and two new tickets (the desk's two members take one each)."""
    handled = _Handled()
    broker.add_middleware(handled)
    with running_worker(engine, desk_settings) as services:
        ids = [services.pipeline.process(make_message(f"{name}{i}", sender=f"{name}{i}@finance.gov.uk"), f"d{name}{i}").ticket_id
               for i in range(2)]
        yield services, handled, ids


def test_a_batchs_effects_travel_as_one_message_each_card_right_after_its_assignment(
    desk_settings, broker, engine: Engine, slack, running_worker  # noqa: ANN001
) -> None:
    # Given two new tickets whose assignments a batch committed
    with _watched_worker(broker, running_worker, engine, desk_settings, "e") as (services, handled, ids):
        # When their keys are queued together
        enqueue_effects(broker, [f"assign:{i}" for i in ids])
        wait_until_drained(broker)
        # Then one queue message carried them all, and each assignment's card with it: nothing else was queued
        assert handled.handled == [(EFFECTS_BATCH_ACTOR, tuple(f"assign:{i}" for i in ids))]
        assert len(slack.fake.posted("#data")) == 2
        assert {read_ticket(engine, i).assignee for i in ids} == {"priya", "jonas"}
        with engine.connect() as c:
            states = dict(c.execute(select(outbox.OUTBOX.c.key, outbox.OUTBOX.c.status)).all())
        assert {states[f"assign:{i}"] for i in ids} == {"done"}
        assert {states[f"card:{i}:1"] for i in ids} == {"done"}


def test_a_key_that_fails_in_a_batch_goes_back_alone_and_the_others_are_done(
    desk_settings, broker, engine: Engine, slack, running_worker  # noqa: ANN001
) -> None:
    with _watched_worker(broker, running_worker, engine, desk_settings, "f") as (services, handled, ids):
        # Given an assignment that fails the first time it is tried
        real, failed = services.effects.in_transaction["assign"], []

        def flaky(c, item):  # noqa: ANN001, ANN202
            if item.key == f"assign:{ids[0]}" and not failed:
                failed.append(item.key)
                raise RuntimeError("a bug that goes away")
            return real(c, item)

        services.effects.in_transaction["assign"] = flaky
        # When the two are queued together
        enqueue_effects(broker, [f"assign:{i}" for i in ids])
        wait_until_drained(broker)
    # Then the other was done in the batch, and the failed one went again alone and was done there
    assert sorted(handled.handled) == [(EFFECT_ACTOR, (f"assign:{ids[0]}",)), (EFFECTS_BATCH_ACTOR, tuple(f"assign:{i}" for i in ids))]
    assert failed == [f"assign:{ids[0]}"]
    assert {read_ticket(engine, i).assignee for i in ids} == {"priya", "jonas"}
    assert len(slack.fake.posted("#data")) == 2


def test_an_effects_message_hands_on_what_it_has_no_room_for_in_order(
    desk_settings, broker, engine: Engine, slack, running_worker, monkeypatch: pytest.MonkeyPatch  # noqa: ANN001
) -> None:
    import workers.actors  # noqa: PLC0415

    monkeypatch.setattr(workers.actors, "MAX_EFFECTS_PER_MESSAGE", 1)
    # Given effects messages with room for one row each
    with _watched_worker(broker, running_worker, engine, desk_settings, "m") as (services, handled, ids):
        # When two assignments are queued together
        enqueue_effects(broker, [f"assign:{i}" for i in ids])
        wait_until_drained(broker)
    # Then each message did one row and queued the rest, in the order they would have run: a card after its assignment
    a, b = ids
    expected = [(EFFECTS_BATCH_ACTOR, (f"assign:{a}", f"assign:{b}")), (EFFECTS_BATCH_ACTOR, (f"card:{a}:1", f"assign:{b}")),
                (EFFECT_ACTOR, (f"assign:{b}",)), (EFFECT_ACTOR, (f"card:{b}:1",))]
    assert sorted(handled.handled) == sorted(expected)  # (threads may finish them out of order)
    assert len(slack.fake.posted("#data")) == 2


def test_a_row_done_before_hands_on_what_it_started(desk_settings, broker, engine: Engine, effects: Effects) -> None:  # noqa: ANN001
    # Given an assignment carried out, whose card was recorded but never carried out (its worker died)
    ticket_id = open_ticket(desk_settings, broker, engine, "g1")
    outbox.put(engine, f"assign:{ticket_id}", "assign", ticket_id, {})
    first = effects.run(f"assign:{ticket_id}")
    assert first.effects == (f"card:{ticket_id}:1",)
    # When the assignment is delivered again
    again = effects.run(f"assign:{ticket_id}")
    # Then it is not done twice, but names the card, for the delivery to carry out in its place
    assert (again.outcome, again.effects) == ("already", (f"card:{ticket_id}:1",))
    # And a row with nothing after it, or not done, gives nothing
    effects.run(f"card:{ticket_id}:1")
    assert effects.run(f"card:{ticket_id}:1") is None
    assert effects.run("assign:no-such-row") is None


@contextlib.contextmanager
def _transactions(engine: Engine) -> Iterator[list[object]]:
    """The transactions begun on ``engine`` inside the block."""
    begun: list[object] = []
    count = begun.append  # one bound method: event.remove finds the listener by identity
    event.listen(engine, "begin", count)
    try:
        yield begun
    finally:
        event.remove(engine, "begin", count)


def test_without_slack_a_card_is_marked_skipped_in_the_transaction_that_claims_it(
    desk_settings, broker, engine: Engine, desk: Desk  # noqa: ANN001
) -> None:
    # Given a desk without Slack, and an assignment whose card is recorded
    quiet = Effects(engine, desk, None, clock=lambda: MONDAY_10)
    ticket_id = open_ticket(desk_settings, broker, engine, "h1")
    outbox.put(engine, f"assign:{ticket_id}", "assign", ticket_id, {})
    [card_key] = quiet.run(f"assign:{ticket_id}").effects
    # When the card is carried out, counting the transactions it takes
    with _transactions(engine) as begun:
        result = quiet.run(card_key)
    # Then it is skipped, says why, and took one transaction
    assert (result.outcome, result.detail) == ("skipped", "Slack is not configured")
    assert len(begun) == 1
    with engine.connect() as c:
        row = c.execute(select(outbox.OUTBOX).where(outbox.OUTBOX.c.key == card_key)).one()
    assert (row.status, row.result) == ("done", {"skipped": "Slack is not configured"})


def test_rows_on_the_database_alone_are_carried_out_in_one_transaction(
    desk_settings, broker, engine: Engine, desk: Desk  # noqa: ANN001
) -> None:
    # Given three assignments recorded, one of them done before, and a desk without Slack (its cards are skipped in the database)
    quiet = Effects(engine, desk, None, clock=lambda: MONDAY_10)
    ids = [open_ticket(desk_settings, broker, engine, f"t{i}") for i in range(3)]
    for i in ids:
        outbox.put(engine, f"assign:{i}", "assign", i, {})
    quiet.run(f"assign:{ids[1]}")
    keys = [f"assign:{i}" for i in ids]
    # When they are carried out together
    with _transactions(engine) as begun:
        results = quiet.run_together(keys)
    # Then in one transaction, each as `run` would have: the one done before hands on its card, and the third, with both
    # members at their capacity of one (counted with the assignment made before it in the same transaction), waits
    assert len(begun) == 1
    assert [(r.outcome, r.facts.get("outcome"), r.effects) for r in results] == [
        ("done", "assigned", (f"card:{ids[0]}:1",)), ("already", None, (f"card:{ids[1]}:1",)), ("done", "backlog", ())]
    assert [read_ticket(engine, i).assignee is not None for i in ids] == [True, True, False]
    # And the two cards, together, are skipped in one more
    with _transactions(engine) as begun:
        cards = quiet.run_together([f"card:{i}:1" for i in ids[:2]])
    assert len(begun) == 1
    assert [r.outcome for r in cards] == ["skipped"] * 2


def test_rows_done_together_stop_at_one_that_is_not_on_the_database_alone(
    desk_settings, broker, engine: Engine, effects: Effects  # noqa: ANN001
) -> None:
    # Given (with Slack) an assignment, a card to post, and another assignment
    ids = [open_ticket(desk_settings, broker, engine, f"u{i}") for i in range(2)]
    for i in ids:
        outbox.put(engine, f"assign:{i}", "assign", i, {})
    [card] = effects.run(f"assign:{ids[0]}").effects
    # When they are carried out together
    results = effects.run_together([f"assign:{ids[1]}", card, f"assign:{ids[0]}"])
    # Then the first is done, and the card (a post to Slack) stops the group, unclaimed, for `run`
    assert [r.outcome for r in results] == ["done"]
    assert outbox.get(engine, card)["status"] == "pending"
    assert effects.run_together([card, f"assign:{ids[0]}"]) == []


def test_a_row_that_fails_undoes_its_group_and_says_which(desk_settings, broker, engine: Engine, desk: Desk) -> None:  # noqa: ANN001
    # Given three assignments, the second of which fails
    quiet = Effects(engine, desk, None, clock=lambda: MONDAY_10)
    ids = [open_ticket(desk_settings, broker, engine, f"v{i}") for i in range(3)]
    for i in ids:
        outbox.put(engine, f"assign:{i}", "assign", i, {})
    real = quiet.in_transaction["assign"]

    def broken(c, item):  # noqa: ANN001, ANN202
        if item.key == f"assign:{ids[1]}":
            raise RuntimeError("a bug")
        return real(c, item)

    quiet.in_transaction["assign"] = broken
    # When they are carried out together
    with pytest.raises(GroupFailed) as failed:
        quiet.run_together([f"assign:{i}" for i in ids])
    # Then it says which, nothing of the group is done, and the failed row shows its error
    assert failed.value.index == 1
    assert isinstance(failed.value.error, RuntimeError)
    states = {i: outbox.get(engine, f"assign:{i}") for i in ids}
    assert [states[i]["status"] for i in ids] == ["pending"] * 3
    assert states[ids[1]]["last_error"] == "RuntimeError: a bug"
    assert {read_ticket(engine, i).assignee for i in ids} == {None}


def test_capacity_backlog_and_oldest_first(desk_settings, broker, engine: Engine, desk: Desk) -> None:  # noqa: ANN001
    ids = [open_ticket(desk_settings, broker, engine, f"c{i}", MONDAY_10 + timedelta(minutes=i)) for i in range(4)]
    results = [assign(engine, desk, i, MONDAY_10) for i in ids]
    assert [r.outcome for r in results] == ["assigned", "assigned", "backlog", "backlog"]  # two members of capacity 1
    assert "nobody available with capacity: backlog" in results[2].reasons
    assert "priya full (1/1)" in " ".join(results[2].reasons)
    jobs = Jobs(engine, desk, enqueue=lambda key: None)
    assert jobs.backlog(MONDAY_10) == {"assigned": 0, "waiting": 2}
    set_status(engine, desk, ids[0], "resolved", MONDAY_10, by="test", key="t1")  # capacity frees
    assert jobs.backlog(MONDAY_10) == {"assigned": 1, "waiting": 1}
    assert read_ticket(engine, ids[2]).assignee is not None
    assert read_ticket(engine, ids[3]).assignee is None  # the oldest first
    assert jobs.backlog(MONDAY_10) == {"assigned": 0, "waiting": 1}  # run again: same state


def test_assignments_at_once_never_hand_out_a_slot_twice(desk_settings, broker, engine: Engine, desk: Desk) -> None:  # noqa: ANN001
    # Given six unassigned tickets of a team whose two members take one ticket each
    ids = [open_ticket(desk_settings, broker, engine, f"r{i}") for i in range(6)]
    barrier = threading.Barrier(len(ids))

    def assign_when_all_are_ready(ticket_id: int) -> str:
        barrier.wait(timeout=30)
        return assign(engine, desk, ticket_id, MONDAY_10).outcome

    # When they are all assigned at the same moment, each on a connection of its own
    with concurrent.futures.ThreadPoolExecutor(len(ids)) as pool:
        outcomes = list(pool.map(assign_when_all_are_ready, ids))
    # Then each member got one, the other four wait in the backlog (the team's row serialised the choices)
    assert sorted(outcomes) == ["assigned"] * 2 + ["backlog"] * 4
    assert sorted(read_ticket(engine, i).assignee or "" for i in ids) == [""] * 4 + ["jonas", "priya"]


def test_sla_warning_then_breach_reach_slack_once(desk_settings, broker, engine: Engine, desk: Desk, effects: Effects, slack) -> None:  # noqa: ANN001
    ticket_id = open_ticket(desk_settings, broker, engine, "s1")
    assign(engine, desk, ticket_id, MONDAY_10)
    due = read_ticket(engine, ticket_id).first_response_due_at
    assert due == MONDAY_10 + timedelta(hours=4)
    queued: list[str] = []
    jobs = Jobs(engine, desk, enqueue=queued.append)
    at_80 = MONDAY_10 + timedelta(hours=3, minutes=12)
    assert jobs.sla(at_80) == {"warned": 1, "breached": 0}
    assert jobs.sla(at_80) == {"warned": 0, "breached": 0}  # idempotent
    after = due + timedelta(minutes=1)
    assert jobs.sla(after)["breached"] == 1
    assert jobs.sla(after)["breached"] == 0
    for key in dict.fromkeys(queued):
        effects.run(key)
        effects.run(key)  # a repeated delivery: nothing posted twice
    [warning] = slack.fake.posted("#data")
    assert "⏳" in warning["text"]
    assert "first response" in warning["text"]
    [escalation] = slack.fake.posted("#escalations")
    assert "🚨" in escalation["text"]
    assert "<@U1>" in escalation["text"]  # to the team lead
    assert len(_events(engine, "sla_warning")) == 1
    assert len(_events(engine, "sla_breached")) == 1
    assert len(_events(engine, "escalated")) == 1


def test_waiting_on_the_enquirer_pauses_the_clock(desk_settings, broker, engine: Engine, desk: Desk) -> None:  # noqa: ANN001
    ticket_id = open_ticket(desk_settings, broker, engine, "p1")
    assign(engine, desk, ticket_id, MONDAY_10)
    before = read_ticket(engine, ticket_id).resolution_due_at
    set_status(engine, desk, ticket_id, "pending", MONDAY_10 + timedelta(hours=1), by="priya", key="pending-1")
    assert Jobs(engine, desk, lambda k: None).sla(before + timedelta(hours=1)) == {"warned": 0, "breached": 0}  # paused
    # The enquirer answers on Tuesday 10:00: 1 h of Monday + 1 h of Tuesday passed in business time
    pipeline = build_services(desk_settings, broker, engine).pipeline
    reply_at = MONDAY_10 + timedelta(days=1)
    pipeline.process(make_message("p1-reply", sender="p1@finance.gov.uk", in_reply_to=("p1",), received_at=reply_at), "d-p1r")
    ticket = read_ticket(engine, ticket_id)
    assert ticket.status == "open"
    assert ticket.sla_paused_at is None
    # the pipeline stamps "now", not the message time; the clock moved on by the business time it stood still
    assert ticket.resolution_due_at > before


def test_daily_digest_once_per_team_and_day(desk_settings, broker, engine: Engine, desk: Desk, effects: Effects, slack) -> None:  # noqa: ANN001
    open_ticket(desk_settings, broker, engine, "g1")
    queued: list[str] = []
    jobs = Jobs(engine, desk, enqueue=queued.append)
    assert jobs.digest(datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc)) == {"posted": 0}  # before 09:00 local
    assert jobs.digest(MONDAY_10) == {"posted": 2}  # both teams
    assert jobs.digest(MONDAY_10 + timedelta(hours=2)) == {"posted": 0}
    assert jobs.digest(datetime(2026, 11, 7, 10, 0, tzinfo=timezone.utc)) == {"posted": 0}  # a Saturday
    for key in dict.fromkeys(queued):
        effects.run(key)
    [digest] = slack.fake.posted("#data")
    assert "digest 2026-11-02" in digest["text"]
    assert "new 1" in digest["text"]


def test_tickets_of_someone_on_leave_are_reassigned_with_the_reason(desk_settings, broker, engine: Engine, desk: Desk, tmp_path: Path) -> None:  # noqa: ANN001
    ticket_id = open_ticket(desk_settings, broker, engine, "l1")
    first = assign(engine, desk, ticket_id, MONDAY_10).member
    other = "jonas" if first == "priya" else "priya"
    away = TEAMS.replace(f"{{key: {first}, name: {first.title()},", f"{{key: {first}, name: {first.title()}, on_leave_until: 2026-11-20,")
    (tmp_path / "teams.yaml").write_text(away)
    desk_away = Desk(load_desk(desk_settings))
    jobs = Jobs(engine, desk_away, enqueue=lambda key: None)
    assert jobs.away(MONDAY_10) == {"reassigned": 1}
    assert jobs.away(MONDAY_10) == {"reassigned": 0}
    ticket = read_ticket(engine, ticket_id)
    assert ticket.assignee == other
    assert ticket.assignment_count == 2
    assert ticket.assignment["reasons"][0] == f"{first} on leave until 2026-11-20"
    [event] = _events(engine, "reassigned")
    assert event.data["from"] == first


def test_slack_rate_limit_and_lost_response_still_one_post(desk_settings, broker, engine: Engine, desk: Desk, effects: Effects, slack) -> None:  # noqa: ANN001
    from workers.errors import SlackRateLimited as RateLimited
    from workers.errors import SlackUnavailable
    ticket_id = open_ticket(desk_settings, broker, engine, "r1")
    result = assign(engine, desk, ticket_id, MONDAY_10)
    [card_key] = result.effects
    slack.fake.inject("chat.postMessage", "ratelimit", 1, 3)
    with pytest.raises(RateLimited) as limited:
        effects.run(card_key)
    assert limited.value.retry_after == 3
    slack.fake.inject("chat.postMessage", "drop", 1)  # posted, but the answer is lost
    with pytest.raises(SlackUnavailable):
        effects.run(card_key)
    effects.run(card_key)  # the retry finds the card it posted
    assert len(slack.fake.posted("#data")) == 1
    row = outbox.get(engine, card_key)
    assert row["status"] == "done"
    assert row["attempts"] == 3
    assert row["result"]["found_existing"] is True


def test_the_outbox_sweep_recovers_lost_enqueues(desk_settings, broker, engine: Engine, desk: Desk) -> None:  # noqa: ANN001
    ticket_id = open_ticket(desk_settings, broker, engine, "o1")  # its assign row is pending; nobody enqueued it
    queued: list[str] = []
    from storage.models import utcnow

    assert Jobs(engine, desk, queued.append).outbox(utcnow()) == {"requeued": 0}  # just written: give the queue time
    assert Jobs(engine, desk, queued.append).outbox(utcnow() + timedelta(minutes=5)) == {"requeued": 1}
    assert queued == [f"assign:{ticket_id}"]


def test_scheduler_ticks_enqueue_each_job_once_per_window(settings: Settings, broker) -> None:  # noqa: ANN001
    now = 1_800_000_000.0
    assert tick(broker, settings.redis_namespace, 30, now) == list(JOB_NAMES)
    assert tick(broker, settings.redis_namespace, 30, now + 5) == []  # another scheduler, same window
    assert tick(broker, settings.redis_namespace, 30, now + 31) == list(JOB_NAMES)
    assert broker.client.llen(f"{settings.redis_namespace}:scheduled") == 2 * len(JOB_NAMES)
