"""Health reads every adapter alike (``AdapterHealth.states``) and workers from the one liveness reader — real Redis."""

from __future__ import annotations

import time

import dramatiq
import pytest
import redis
from sqlalchemy import Engine

from config.queues import EFFECT_ACTOR, EFFECTS_QUEUE, INTAKE_QUEUE, PROCESS_ACTOR, QUEUES
from config.settings import Settings
from intake.state import AdapterHealth, Checkpoint, RedisCheckpointStore
from tests.factories import make_message
from workers.ops.health import adapter_problems, desk_snapshot, read_adapters
from workers.ops.liveness import WorkerHeartbeat
from workers.ops.queue_state import read_queue, unfinished

LIMITS = {"adapter_silent": 900.0, "adapter_down": 60.0, "crash_window": 3600.0}


@pytest.fixture
def health(client: redis.Redis, namespace: str) -> AdapterHealth:
    return AdapterHealth(client, namespace)


@pytest.fixture
def checkpoints(client: redis.Redis, namespace: str) -> RedisCheckpointStore:
    return RedisCheckpointStore(client, namespace)


# -- adapters, read alike -----------------------------------------------------------------------------
def test_given_an_imap_loop_and_its_checkpoint_when_adapters_are_read_then_the_loop_carries_it(
        health: AdapterHealth, checkpoints: RedisCheckpointStore, client: redis.Redis, namespace: str) -> None:
    # Given an IMAP folder loop that synced, and its checkpoint
    health.success("imap:u@h/INBOX")
    checkpoints.set("imap", "u@h", "INBOX", Checkpoint(uidvalidity=9, last_uid=41))
    # When the adapters are read
    adapters = read_adapters(client, namespace)
    # Then the loop carries its checkpoint
    assert adapters["imap:u@h/INBOX"].checkpoint["last_uid"] == 41


def test_given_a_loop_of_any_adapter_with_a_checkpoint_when_adapters_are_read_then_it_carries_it(
        health: AdapterHealth, checkpoints: RedisCheckpointStore, client: redis.Redis, namespace: str) -> None:
    # Given a loop of an adapter health knows nothing special about, named <adapter>:<account>/<folder>
    health.beat("drop:desk/incoming")
    checkpoints.set("drop", "desk", "incoming", Checkpoint(uidvalidity=0, last_uid=7))
    # When the adapters are read
    adapters = read_adapters(client, namespace)
    # Then it carries its checkpoint as IMAP's would
    assert adapters["drop:desk/incoming"].checkpoint["last_uid"] == 7


def test_given_another_folders_checkpoint_when_adapters_are_read_then_the_loop_carries_none(
        health: AdapterHealth, checkpoints: RedisCheckpointStore, client: redis.Redis, namespace: str) -> None:
    # Given a loop of INBOX and a checkpoint of another folder of the account
    health.beat("imap:u@h/INBOX")
    checkpoints.set("imap", "u@h", "Archive", Checkpoint(uidvalidity=1, last_uid=3))
    # When the adapters are read
    adapters = read_adapters(client, namespace)
    # Then INBOX has no checkpoint
    assert adapters["imap:u@h/INBOX"].checkpoint is None


def test_given_a_loop_without_checkpoint_when_shown_as_json_then_it_is_its_record(
        health: AdapterHealth, client: redis.Redis, namespace: str) -> None:
    # Given an X stream loop that failed once (X keeps its checkpoints under another name)
    health.error("x:42:mentions", "HTTP 503")
    # When its state is turned into the form `helpdesk status --json` prints
    shown = read_adapters(client, namespace)["x:42:mentions"].to_dict()
    # Then that is its health record, no more
    assert set(shown) == {"last_error", "last_error_at"}


def test_given_a_loop_with_a_checkpoint_when_shown_as_json_then_the_checkpoint_is_under_its_key(
        health: AdapterHealth, checkpoints: RedisCheckpointStore, client: redis.Redis, namespace: str) -> None:
    # Given an IMAP folder loop with a checkpoint
    health.success("imap:u@h/INBOX")
    checkpoints.set("imap", "u@h", "INBOX", Checkpoint(uidvalidity=9, last_uid=41))
    # When its state is shown as JSON
    shown = read_adapters(client, namespace)["imap:u@h/INBOX"].to_dict()
    # Then the checkpoint is under "checkpoint", with its UIDVALIDITY
    assert shown["checkpoint"]["uidvalidity"] == 9


def test_given_mail_waiting_above_a_checkpoint_when_judged_then_the_loop_is_stuck_by_the_difference(
        health: AdapterHealth, checkpoints: RedisCheckpointStore, client: redis.Redis, namespace: str) -> None:
    # Given a folder whose highest UID is 7, mail waiting since now, and a checkpoint at 4 written now
    health.progress("imap:u@h/INBOX", highest_uid=7, waiting_since=time.time())
    checkpoints.set("imap", "u@h", "INBOX", Checkpoint(uidvalidity=1, last_uid=4))
    state = read_adapters(client, namespace)["imap:u@h/INBOX"]
    # When health judges it 20 minutes later, nothing having moved
    [problem] = adapter_problems("imap:u@h/INBOX", state, now=time.time() + 1200, **LIMITS)
    # Then it is stuck with three messages above the checkpoint
    assert problem.detail.startswith("imap:u@h/INBOX: 3 message(s) above the checkpoint")


def test_given_a_checkpoint_that_moves_when_judged_then_the_loop_is_not_stuck(
        health: AdapterHealth, checkpoints: RedisCheckpointStore, client: redis.Redis, namespace: str) -> None:
    # Given mail waiting for 20 minutes above a checkpoint that moved just now (a long first sync)
    health.progress("imap:u@h/INBOX", highest_uid=9000, waiting_since=time.time() - 1200)
    checkpoints.set("imap", "u@h", "INBOX", Checkpoint(uidvalidity=1, last_uid=4000))
    state = read_adapters(client, namespace)["imap:u@h/INBOX"]
    # When health judges it
    problems = adapter_problems("imap:u@h/INBOX", state, now=time.time(), **LIMITS)
    # Then nothing is wrong
    assert problems == []


def test_given_a_record_as_a_plain_dict_when_judged_then_it_is_judged_as_its_state(health: AdapterHealth) -> None:
    # Given the dict form of a loop whose heartbeat is two minutes old (as `status --json` shows it)
    info = {"running": f"{time.time() - 120:.3f}"}
    # When health judges it
    problems = adapter_problems("imap:u@h/INBOX", info, now=time.time(), **LIMITS)
    # Then it is down
    assert [(p.condition, p.severity) for p in problems] == [("adapter_down", "unhealthy")]


# -- the snapshot every surface shares ------------------------------------------------------------
def _waiting_message() -> dramatiq.Message:
    return dramatiq.Message(queue_name=INTAKE_QUEUE, actor_name=PROCESS_ACTOR, args=(make_message("waits").to_json(),),
                            kwargs={}, options={})


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_given_work_waiting_and_no_worker_when_the_snapshot_is_taken_then_no_workers_is_unhealthy(
        settings: Settings, broker, engine: Engine) -> None:  # noqa: ANN001
    # Given a message waiting and no worker alive
    broker.enqueue(_waiting_message())
    # When the snapshot is taken
    snap = desk_snapshot(settings, broker.client, engine, QUEUES)
    # Then "no workers" is an unhealthy problem
    assert [(p.condition, p.severity) for p in snap.problems if p.subject == "workers"] == [("no_workers", "unhealthy")]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_given_work_waiting_and_a_live_worker_when_the_snapshot_is_taken_then_no_worker_problem(
        settings: Settings, broker, engine: Engine) -> None:  # noqa: ANN001
    # Given a message waiting and a live worker
    broker.enqueue(_waiting_message())
    heartbeat = WorkerHeartbeat(broker.client, settings.redis_namespace)
    heartbeat.start("worker-a", threads=2)
    try:
        # When the snapshot is taken
        snap = desk_snapshot(settings, broker.client, engine, QUEUES)
    finally:
        heartbeat.stop()
    # Then no problem concerns the workers
    assert [p for p in snap.problems if p.subject == "workers"] == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_given_a_live_worker_when_the_snapshot_is_shown_as_json_then_it_lists_the_worker_by_id(
        settings: Settings, broker, engine: Engine) -> None:  # noqa: ANN001
    # Given a live worker
    heartbeat = WorkerHeartbeat(broker.client, settings.redis_namespace)
    heartbeat.start("worker-a", threads=2)
    try:
        # When the snapshot is shown as `helpdesk status --json` shows it
        data = desk_snapshot(settings, broker.client, engine, QUEUES).to_dict()
    finally:
        heartbeat.stop()
    # Then the worker is listed by its id
    assert [w["id"] for w in data["workers"]] == ["worker-a"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_given_an_adapter_with_a_checkpoint_when_the_snapshot_is_shown_as_json_then_it_has_record_and_checkpoint(
        settings: Settings, broker, engine: Engine) -> None:  # noqa: ANN001
    # Given an IMAP folder loop that synced, and its checkpoint
    AdapterHealth(broker.client, settings.redis_namespace).success("imap:u@h/INBOX", "read=1")
    RedisCheckpointStore(broker.client, settings.redis_namespace).set("imap", "u@h", "INBOX", Checkpoint(9, 41))
    # When the snapshot is shown as JSON
    adapter = desk_snapshot(settings, broker.client, engine, QUEUES).to_dict()["adapters"]["imap:u@h/INBOX"]
    # Then it holds the record's fields and the checkpoint
    assert set(adapter) == {"last_success", "last_detail", "checkpoint"}


def test_unfinished_counts_in_one_round_trip_what_each_queue_state_counts(settings: Settings, broker) -> None:  # noqa: ANN001
    # Given messages ready on two queues, one delayed, and one taken by a consumer (in flight)
    namespace = settings.redis_namespace
    for _ in range(3):
        broker.enqueue(_waiting_message())
    broker.enqueue(_waiting_message().copy(queue_name=EFFECTS_QUEUE, actor_name=EFFECT_ACTOR, args=("assign:1",)))
    broker.enqueue(_waiting_message(), delay=60_000)
    consumer = broker.consume(INTAKE_QUEUE, prefetch=1, timeout=1000)
    taken = next(consumer)
    assert taken is not None
    # When the worker waiting to be idle counts them
    left = unfinished(broker.client, namespace, QUEUES)
    # Then it finds what the queue states of `helpdesk status` add up to: 2 ready + 1 in flight, 1 ready, 1 delayed
    states = [read_queue(broker.client, namespace, queue, 60_000) for queue in QUEUES]
    assert left == sum(state.unfinished for state in states) == 5
    consumer.close()
