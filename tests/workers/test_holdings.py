"""A live worker hands back what Redis says it holds but it has forgotten, and nothing it still holds."""

from __future__ import annotations

import threading
import time

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker

from workers.ops import runner
from workers.ops.runner import run_worker

QUEUE = "holdings"


@pytest.fixture
def fast_readings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "HOLDINGS_SECONDS", 0.5)


def start_worker(broker: RedisBroker) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=run_worker, args=(broker, (QUEUE,)), kwargs={"threads": 2, "stop_event": stop}, daemon=True)
    thread.start()
    return thread, stop


def wait_until(condition, timeout: float) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def held_by(broker: RedisBroker, holder: str, value: str) -> list[str]:
    """Send ``value`` to a recording actor, then move it out of the queue into ``holder``'s acks: held, not ready.
    Returns the list the actor records into."""
    done: list[str] = []

    @dramatiq.actor(broker=broker, queue_name=QUEUE, max_retries=0)
    def record(value: str) -> None:
        done.append(value)

    redis_id = record.send(value).options["redis_message_id"]
    assert broker.client.lrem(f"{broker.namespace}:{QUEUE}", 0, redis_id) == 1
    broker.client.sadd(f"{broker.namespace}:__acks__.{holder}.{QUEUE}", redis_id)
    return done


def test_given_a_message_redis_counts_as_held_by_a_live_worker_that_never_got_it_when_the_worker_runs_then_it_is_processed(
    redis_url: str, namespace: str, fast_readings: None
) -> None:
    # Given: what a fetch whose reply was lost, or an ack lost with Redis's last second, leaves behind
    broker = RedisBroker(url=redis_url, namespace=namespace)
    done = held_by(broker, broker.broker_id, "forgotten")

    # When
    thread, stop = start_worker(broker)
    try:
        # Then
        assert wait_until(lambda: done == ["forgotten"], 15), f"the forgotten message was not processed: {done}"
        assert wait_until(lambda: not broker.client.smembers(f"{namespace}:__acks__.{broker.broker_id}.{QUEUE}"), 5)
    finally:
        stop.set()
        thread.join(40)
        broker.close()


def test_given_a_message_a_worker_is_still_processing_when_readings_pass_then_it_is_processed_once(
    redis_url: str, namespace: str, fast_readings: None
) -> None:
    # Given
    broker = RedisBroker(url=redis_url, namespace=namespace)
    calls: list[str] = []

    @dramatiq.actor(broker=broker, queue_name=QUEUE, max_retries=0, time_limit=60_000)
    def slow(value: str) -> None:
        calls.append(value)
        time.sleep(4)  # eight readings while it is in hand

    slow.send("slow")
    for n in range(6):  # more than the two threads take: some wait in the work queue or the prefetch
        slow.send(f"queued-{n}")

    # When
    thread, stop = start_worker(broker)
    try:
        assert wait_until(lambda: len(calls) == 7, 40), calls
        time.sleep(2)
    finally:
        stop.set()
        thread.join(40)
        broker.close()

    # Then
    assert sorted(calls) == sorted(["slow"] + [f"queued-{n}" for n in range(6)])


def test_given_a_worker_killed_just_before_another_started_when_its_heartbeat_times_out_then_what_it_held_is_processed(
    redis_url: str, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a message held by a worker that has just died: its heartbeat is still fresh when the next worker starts
    monkeypatch.setattr(runner, "RECOVERY_SECONDS", 0.5, raising=False)
    broker = RedisBroker(url=redis_url, namespace=namespace, heartbeat_timeout=1000)
    broker.maintenance_chance = 0  # only the worker's own recovery may hand it back, not dramatiq's luck
    done = held_by(broker, "dead-worker", "stranded")
    broker.client.zadd(f"{namespace}:__heartbeats__", {"dead-worker": int(time.time() * 1000)})

    # When a worker starts (the dead one is not dead yet) and runs on
    thread, stop = start_worker(broker)
    try:
        # Then the message is processed once the dead worker's heartbeat is older than the timeout
        assert wait_until(lambda: done == ["stranded"], 15), f"the stranded message was not processed: {done}"
    finally:
        stop.set()
        thread.join(timeout=30)
