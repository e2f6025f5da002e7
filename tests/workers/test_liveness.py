"""Worker liveness: one writer (each worker's record), one reader (``read_workers``, ``silent_consumers``) — real Redis."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator

import dramatiq
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker

from config.broker import close_broker
from tests.intake.imap_helpers import wait_for
from workers.ops.liveness import WorkerHeartbeat, heartbeats_key, read_workers, record_key, silent_consumers
from workers.ops.observability import Observability


@pytest.fixture
def heartbeat(client: redis.Redis, namespace: str) -> Iterator[WorkerHeartbeat]:
    beating = WorkerHeartbeat(client, namespace, beat_seconds=0.05)
    yield beating
    beating.stop()


def test_given_a_started_heartbeat_when_workers_are_read_then_it_is_listed_by_its_id(heartbeat: WorkerHeartbeat,
                                                                                     client: redis.Redis, namespace: str) -> None:
    # Given a worker that started its heartbeat
    heartbeat.start("worker-a", threads=3)
    # When the workers are read
    workers = read_workers(client, namespace)
    # Then it is the one listed
    assert [w.worker_id for w in workers] == ["worker-a"]


def test_given_a_started_heartbeat_when_workers_are_read_then_its_process_is_described(heartbeat: WorkerHeartbeat,
                                                                                       client: redis.Redis, namespace: str) -> None:
    # Given a worker of this process with three threads
    heartbeat.start("worker-a", threads=3)
    # When the workers are read
    [worker] = read_workers(client, namespace)
    # Then its host, pid and threads are this process's
    assert (worker.host, worker.pid, worker.threads) == (socket.gethostname(), os.getpid(), 3)


def test_given_a_worker_when_shown_as_json_then_the_keys_are_the_public_ones(heartbeat: WorkerHeartbeat, client: redis.Redis,
                                                                             namespace: str) -> None:
    # Given a live worker
    heartbeat.start("worker-a", threads=1)
    # When it is turned into the form `helpdesk status --json` prints
    shown = read_workers(client, namespace)[0].to_dict()
    # Then its keys are the public ones
    assert set(shown) == {"id", "host", "pid", "threads", "started", "last_heartbeat_age_seconds"}


def test_given_a_running_heartbeat_when_time_passes_then_the_record_is_kept_beyond_its_expiry(client: redis.Redis,
                                                                                              namespace: str) -> None:
    # Given a heartbeat whose record expires after one second, rewritten every 0.1 s
    beating = WorkerHeartbeat(client, namespace, beat_seconds=0.1, ttl_seconds=1)
    beating.start("worker-a", threads=1)
    try:
        # When two expiries have passed
        time.sleep(2.2)
        # Then the worker is still listed
        assert [w.worker_id for w in read_workers(client, namespace)] == ["worker-a"]
    finally:
        beating.stop()


def test_given_a_stopped_heartbeat_when_workers_are_read_then_none_is_listed(heartbeat: WorkerHeartbeat, client: redis.Redis,
                                                                            namespace: str) -> None:
    # Given a worker that started and stopped cleanly
    heartbeat.start("worker-a", threads=1)
    heartbeat.stop()
    # When the workers are read
    workers = read_workers(client, namespace)
    # Then it is gone at once
    assert workers == []


def test_given_a_worker_that_died_when_its_record_expires_then_it_is_not_listed(client: redis.Redis, namespace: str) -> None:
    # Given a worker record that nobody rewrites any more (its process was killed)
    client.set(record_key(namespace, "worker-dead"), json.dumps({"pid": 1, "host": "h", "threads": 1, "started": 0}), px=300)
    # When its expiry has passed
    time.sleep(0.5)
    # Then it is not listed
    assert read_workers(client, namespace) == []


def test_given_a_broker_heartbeat_when_workers_are_read_then_its_age_is_reported(heartbeat: WorkerHeartbeat, client: redis.Redis,
                                                                                namespace: str) -> None:
    # Given a worker whose broker heartbeat was 3 s before now
    heartbeat.start("worker-a", threads=1)
    now = time.time()
    client.zadd(heartbeats_key(namespace), {"worker-a": (now - 3) * 1000})
    # When the workers are read
    [worker] = read_workers(client, namespace, now=now)
    # Then its broker heartbeat is 3 s old
    assert worker.last_heartbeat_age_seconds == 3.0


def test_given_no_broker_heartbeat_yet_when_workers_are_read_then_its_age_is_unknown(heartbeat: WorkerHeartbeat,
                                                                                     client: redis.Redis, namespace: str) -> None:
    # Given a worker that has not consumed yet (no broker heartbeat)
    heartbeat.start("worker-a", threads=1)
    # When the workers are read
    [worker] = read_workers(client, namespace)
    # Then the age of its broker heartbeat is unknown
    assert worker.last_heartbeat_age_seconds is None


def test_given_an_unreadable_record_when_workers_are_read_then_the_worker_is_still_listed(client: redis.Redis,
                                                                                          namespace: str) -> None:
    # Given a worker record that is not JSON
    client.set(record_key(namespace, "worker-odd"), b"\xff not json", ex=10)
    # When the workers are read
    workers = read_workers(client, namespace)
    # Then the worker is listed (alive is alive), its details unknown
    assert [(w.worker_id, w.pid) for w in workers] == [("worker-odd", None)]


def test_given_a_silent_and_a_fresh_consumer_when_silent_ones_are_asked_then_only_the_silent_one_is(client: redis.Redis,
                                                                                                    namespace: str) -> None:
    # Given a consumer heard from 90 s ago and one heard from just now
    now = time.time()
    client.zadd(heartbeats_key(namespace), {"gone": (now - 90) * 1000, "here": now * 1000})
    # When the consumers silent for over 60 s are asked for
    silent = silent_consumers(client, namespace, 60_000, now=now)
    # Then only the first is
    assert silent == ["gone"]


@pytest.fixture
def observed_broker(redis_url: str, namespace: str) -> Iterator[RedisBroker]:
    """A real broker with the worker middleware, as ``helpdesk worker`` has it."""
    broker = RedisBroker(url=redis_url, namespace=namespace)
    broker.add_middleware(Observability(broker.client, namespace))
    yield broker
    close_broker(broker)


def test_given_a_dramatiq_worker_with_observability_when_it_runs_then_it_is_listed_under_its_broker_id(
        observed_broker: RedisBroker, namespace: str) -> None:
    # Given a worker on the broker
    worker = dramatiq.Worker(observed_broker, worker_threads=1, worker_timeout=100)
    # When it runs
    worker.start()
    try:
        wait_for(lambda: read_workers(observed_broker.client, namespace), timeout=10)
        listed = read_workers(observed_broker.client, namespace)
    finally:
        worker.stop(timeout=10_000)
    # Then it is listed under the id its broker heartbeats carry
    assert [w.worker_id for w in listed] == [observed_broker.broker_id]


def test_given_a_running_dramatiq_worker_when_it_stops_then_it_is_not_listed(observed_broker: RedisBroker, namespace: str) -> None:
    # Given a running worker
    worker = dramatiq.Worker(observed_broker, worker_threads=1, worker_timeout=100)
    worker.start()
    wait_for(lambda: read_workers(observed_broker.client, namespace), timeout=10)
    # When it stops
    worker.stop(timeout=10_000)
    # Then it is no longer listed
    assert read_workers(observed_broker.client, namespace) == []
