"""Running a worker process: start dramatiq's Worker, stop on a signal or when the queues drain.

A worker outlives the services it needs: started while Redis is down it waits
for Redis (bounded exponential backoff) instead of exiting, and a Redis outage
while it runs pauses its queue readings instead of ending it. dramatiq's own
consumers reconnect by themselves; what an outage made the worker forget it
holds is handed back by ``workers.ops.holdings``.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

import dramatiq
import redis
import structlog
from dramatiq.brokers.redis import RedisBroker
from dramatiq.errors import BrokerConnectionError

from config.broker import wait_for_redis
from workers.ops.holdings import Holdings, in_hand
from workers.ops.queue_state import recover_stranded, unfinished

# The longest a consumer with nothing to fetch sleeps between looks (dramatiq backs off up to it, jittered to 50–100 %;
# its default is 1 s). A consumer also acknowledges what its threads finished only between looks, so this bounds
# how long a message stays unacknowledged after it was handled, as well as how long a new one waits.
WORKER_TIMEOUT_MS = 100
IDLE_CHECKS = 3  # consecutive empty readings before an --until-idle worker stops
POLL_SECONDS = 0.2
IDLE_POLL_SECONDS = 0.025  # an --until-idle worker looks more often (one round trip): it exits 0.075 s after the last message, not 0.6 s
HOLDINGS_SECONDS = 5.0  # how often a worker compares what Redis says it holds with what it holds
RECOVERY_SECONDS = 5.0  # how often a worker returns to the queues what dead workers held
REDIS_ERRORS = (redis.RedisError, BrokerConnectionError)
log = structlog.get_logger("helpdesk.worker")


def run_worker(
    broker: RedisBroker,
    queues: tuple[str, ...],
    *,
    threads: int,
    until_idle: bool = False,
    on_poll: Callable[[int], None] | None = None,
    stop_event: threading.Event | None = None,
    max_wait_seconds: float = 30.0,
) -> None:
    """Process ``queues`` until SIGINT/SIGTERM, ``stop_event``, or — with ``until_idle`` — until
    every queue is empty and nothing is delayed or in flight anywhere.

    ``on_poll`` is called with the number of unfinished messages (for progress bars).
    """
    stop = stop_event or threading.Event()
    install_signal_handlers(stop)
    if not recover(broker, queues, stop, max_wait_seconds):
        return
    taken = in_hand(broker)
    worker = dramatiq.Worker(broker, worker_threads=threads, queues=set(queues), worker_timeout=WORKER_TIMEOUT_MS)
    holdings = Holdings(broker, worker, taken)
    worker.start()
    try:
        idle_readings = 0
        last_recovery = last_holdings = time.monotonic()
        while not stop.wait(IDLE_POLL_SECONDS if until_idle else POLL_SECONDS):
            if time.monotonic() - last_holdings >= HOLDINGS_SECONDS:
                last_holdings = time.monotonic()
                try:
                    holdings.check()
                except REDIS_ERRORS as exc:
                    log.warning("redis unreachable; holdings not compared", error=f"{type(exc).__name__}: {exc}")
            if time.monotonic() - last_recovery >= RECOVERY_SECONDS:
                # A worker killed just before another started was not dead yet at that start (its heartbeat was
                # fresh): what it held comes back once its heartbeat times out, not when dramatiq's luck says so.
                last_recovery = time.monotonic()
                try:
                    recover_stranded(broker, queues)
                except REDIS_ERRORS as exc:
                    log.warning("redis unreachable; stranded messages not recovered", error=f"{type(exc).__name__}: {exc}")
            if not until_idle and on_poll is None:
                continue
            try:
                left = unfinished(broker.client, broker.namespace, queues)
            except REDIS_ERRORS as exc:  # Redis went away: keep the worker, look again once it answers
                idle_readings = 0
                log.warning("redis unreachable; waiting", error=f"{type(exc).__name__}: {exc}")
                wait_for_redis(broker.client, stop, max_delay=max_wait_seconds)
                continue
            if on_poll is not None:
                on_poll(left)
            idle_readings = idle_readings + 1 if left == 0 else 0
            if until_idle and idle_readings >= IDLE_CHECKS:
                worker.join()
                # Nothing is left to fetch or to keep a heartbeat for: the consumers wind down while the worker threads
                # do (dramatiq's stop would wait up to a poll interval for each in turn).
                for consumer in worker.consumers.values():
                    consumer.stop()
                break
    finally:
        worker.stop(timeout=30_000)


def recover(broker: RedisBroker, queues: tuple[str, ...], stop: threading.Event, max_wait_seconds: float = 30.0) -> bool:
    """Return what dead workers held to the queues, waiting for Redis first; False if stopped while waiting."""
    while not stop.is_set():
        if not wait_for_redis(broker.client, stop, max_delay=max_wait_seconds, on_wait=_log_wait):
            return False
        try:
            recover_stranded(broker, queues)
            return True
        except REDIS_ERRORS as exc:
            _log_wait(f"{type(exc).__name__}: {exc}", 0.0)
    return False


def _log_wait(error: str, delay: float) -> None:
    log.warning("redis unreachable; waiting", error=error, retry_in=round(delay, 2))


def install_signal_handlers(stop: threading.Event) -> None:
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
