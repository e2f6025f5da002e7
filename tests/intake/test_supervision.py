"""Supervised adapter loops: a loop that dies is restarted and counted; heartbeats show which run — health records in real Redis."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis

from intake.base import MemorySink
from intake.state import AdapterHealth
from intake.supervision import Backoff, Loop, supervise
from intake.x import MENTIONS
from tests.intake.imap_helpers import wait_for
from tests.intake.test_x import make_adapter
from tests.servers.x import ACCOUNT_ID, ANA, XServer
from workers.ops.health import adapter_problems


@pytest.fixture
def rclient(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def _judge(info: dict[str, str], now: float | None = None, **limits: float) -> dict[str, str]:
    """condition → severity of the problems health finds in one adapter record."""
    options = {"adapter_silent": 900.0, "adapter_down": 60.0, "crash_window": 3600.0, **limits}
    return {p.condition: p.severity for p in adapter_problems("a", info, now=now or time.time(), **options)}


def test_a_loop_that_dies_is_restarted_counted_and_heartbeats(rclient: redis.Redis, namespace: str) -> None:
    # Given a loop that crashes twice, then runs until it is stopped
    health = AdapterHealth(rclient, namespace)
    stop = threading.Event()
    runs = []

    def flaky() -> None:
        runs.append(time.monotonic())
        if len(runs) <= 2:
            raise ValueError(f"crash number {len(runs)}")
        stop.wait()

    # When supervised
    thread = threading.Thread(target=supervise, args=([Loop("flaky", flaky, ("test:flaky",))], stop, health),
                              kwargs={"restart": Backoff(0.05, 0.2), "heartbeat_seconds": 0.1}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(runs) == 3, timeout=10)
        first = float(health.read_all()["test:flaky"]["running"])
        wait_for(lambda: float(health.read_all()["test:flaky"]["running"]) > first, timeout=5)  # it keeps beating
        record = health.read_all()["test:flaky"]
    finally:
        stop.set()
        thread.join(timeout=10)
    # Then both crashes are counted with the last one's exception, and health warns of a recent restart
    assert record["restarts"] == "2"
    assert record["last_crash"].startswith("ValueError: crash number 2")
    assert _judge(record) == {"adapter_restarted": "warning"}
    # and once stopped on purpose it is not reported as down, however old its heartbeat gets
    stopped = health.read_all()["test:flaky"]
    assert float(stopped["stopped_at"]) >= float(stopped["running"])
    assert "adapter_down" not in _judge(stopped, now=time.time() + 3600)


def test_a_loop_that_returns_unasked_is_restarted_too(rclient: redis.Redis, namespace: str) -> None:
    health = AdapterHealth(rclient, namespace)
    stop = threading.Event()
    runs = []

    def quits() -> None:
        runs.append(1)
        if len(runs) >= 2:
            stop.wait()

    thread = threading.Thread(target=supervise, args=([Loop("quits", quits, ("test:quits",))], stop, health),
                              kwargs={"restart": Backoff(0.05, 0.2), "heartbeat_seconds": 0.1}, daemon=True)
    thread.start()
    wait_for(lambda: len(runs) == 2, timeout=10)
    stop.set()
    thread.join(timeout=10)
    assert health.read_all()["test:quits"]["last_crash"] == "the loop returned before it was stopped"


def test_a_stale_heartbeat_without_a_stop_is_unhealthy() -> None:
    now = time.time()
    assert _judge({"running": f"{now - 120}"}, now=now) == {"adapter_down": "unhealthy"}
    assert _judge({"running": f"{now - 5}"}, now=now) == {}
    assert _judge({"running": f"{now - 120}", "stopped_at": f"{now - 110}"}, now=now) == {}
    assert _judge({"running": f"{now - 120}", "stopped_at": f"{now - 500}"}, now=now) == {"adapter_down": "unhealthy"}
    # an old crash is history, not a warning
    assert _judge({"running": f"{now}", "restarts": "3", "last_crash_at": f"{now - 7200}", "last_crash": "x"}, now=now) == {}


def test_the_x_polling_loop_is_restarted_after_a_crash(x: XServer, rclient: redis.Redis, namespace: str) -> None:
    # Given an X adapter whose clock fails once, outside any poll (so the loop itself dies)
    calls = []

    def clock() -> float:
        calls.append(1)
        if len(calls) == 1:
            raise OverflowError("the clock broke")
        return time.time()

    x.fake.mention(ANA, "@osdshelp is anyone there?")
    sink = MemorySink()
    adapter = make_adapter(x, rclient, namespace, sink, clock=clock)
    adapter.restart, adapter.heartbeat_seconds = Backoff(0.05, 0.2), 0.1
    stop = threading.Event()
    thread = threading.Thread(target=adapter.run, args=(stop,), daemon=True)
    # When it runs
    thread.start()
    try:
        wait_for(lambda: len(sink.messages) == 1, timeout=15)
        record = AdapterHealth(rclient, namespace).read_all()[f"x:{ACCOUNT_ID}:{MENTIONS}"]
    finally:
        stop.set()
        thread.join(timeout=10)
    # Then the loop was restarted, counted in each stream's record, and went on to queue the mention
    assert record["restarts"] == "1"
    assert record["last_crash"].startswith("OverflowError: the clock broke")
    assert "running" in record
