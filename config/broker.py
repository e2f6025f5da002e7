"""The message broker: dramatiq on Redis, external or embedded.

Delivery semantics (dramatiq's): a message is acknowledged only after its actor
returns, so it may run more than once — after a crash, a lost ack or a retry.
Every actor must therefore be idempotent. Failures are retried with bounded
exponential backoff unless the actor declares them as ``throws`` (invalid
input), which dead-letters them at once.

The embedded Redis (no server to install: the demo's and a small desk's) is in
``config.embedded_redis``.

Outages: a service the worker needs (Redis, the database) being unreachable is
not a failure of the message. Actors raise ``ServiceUnavailable`` for it; the
``Retries`` here puts such a message back without counting a retry and never
dead-letters it, while the worker's gate (``workers.ops.middleware.Outages``)
pauses consumption until the service answers again.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import compute_backoff
from dramatiq.errors import BrokerConnectionError
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Middleware,
    Pipelines,
    ShutdownNotifications,
    TimeLimit,
)
from dramatiq.middleware import Retries as DramatiqRetries

from config.settings import Settings
from config.embedded_redis import before_leaving, start_embedded_redis
from config.errors import ServiceUnavailable

SOCKET_TIMEOUT_SECONDS = 15
CONNECT_TIMEOUT_SECONDS = 5

REDIS_UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError, BrokerConnectionError)


def redis_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says Redis cannot be reached (as opposed to a refused command)."""
    return isinstance(exc, REDIS_UNAVAILABLE)


def wait_for_redis(client: redis.Redis, stop: threading.Event, *, max_delay: float = 30.0,
                   on_wait: Any = None) -> bool:
    """Block until Redis answers PING, retrying with bounded exponential backoff; False if ``stop`` was set first.

    ``on_wait(error, delay)`` is called before each pause (to log it).
    """
    delay = 0.25
    while not stop.is_set():
        try:
            client.ping()
            return True
        except redis.RedisError as exc:
            if on_wait is not None:
                on_wait(f"{type(exc).__name__}: {exc}", delay)
            stop.wait(delay)
            delay = min(max_delay, delay * 2)
    return False


def redis_url(settings: Settings) -> str:
    """The URL of the Redis server to use, starting the embedded one if needed."""
    if settings.redis_url:
        return settings.redis_url
    return start_embedded_redis(settings.data_dir)



def redis_client(url: str) -> redis.Redis:
    """A client with the timeouts every process uses (a network call without one can hang a thread for ever)."""
    return redis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT_SECONDS, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
                                health_check_interval=30)


def create_broker(settings: Settings, url: str | None = None, *, extra: list[Middleware] | None = None,
                  client: redis.Redis | None = None) -> RedisBroker:
    """Build the RedisBroker every process uses: same middleware, same namespace (``client``: one already made by
    ``redis_client``). Workers add their own middleware on top (``ops.runtime.prepare_worker``)."""
    client = client if client is not None else redis_client(url or redis_url(settings))
    middleware: list[Middleware] = [
        AgeLimit(),
        TimeLimit(time_limit=settings.time_limit_seconds * 1000),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        Retries(
            max_retries=settings.max_retries,
            min_backoff=settings.min_backoff_ms,
            max_backoff=settings.max_backoff_ms,
            max_wait=settings.service_wait_max_seconds,
        ),
        CurrentMessage(),
        *(extra or []),
    ]
    broker = RedisBroker(
        client=client,
        namespace=settings.redis_namespace,
        middleware=middleware,
        heartbeat_timeout=settings.heartbeat_timeout_seconds * 1000,
    )
    atexit.register(close_broker, broker)
    _brokers.add(broker)
    return broker


_brokers: "weakref.WeakSet[RedisBroker]" = weakref.WeakSet()


def _close_brokers() -> None:
    for broker in list(_brokers):
        close_broker(broker)


before_leaving(_close_brokers)


class Retries(DramatiqRetries):
    """dramatiq's Retries, plus: a message that failed because a service was unreachable
    (``ServiceUnavailable``) is put back as it was — no retry counted, never dead-lettered —
    and a retry is re-enqueued only once Redis takes it (instead of being lost with the ack).
    """

    def __init__(self, *, max_wait: float = 30.0, **options: Any) -> None:
        super().__init__(**options)
        self.max_wait = max_wait
        self.stopping = threading.Event()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.stopping.set()

    def after_process_message(self, broker: dramatiq.Broker, message: Any, *, result: Any = None,
                              exception: BaseException | None = None) -> None:
        if isinstance(exception, ServiceUnavailable):
            message.options["outages"] = message.options.get("outages", 0) + 1
            self.logger.info("Putting message %r back: %s.", message.message_id, exception)
            self._enqueue(broker, message, self.min_backoff)
            return
        try:
            super().after_process_message(broker, message, result=result, exception=exception)
        except REDIS_UNAVAILABLE:
            # The retry (already counted) could not be enqueued; acking the original now would lose it.
            _, delay = compute_backoff(max(0, message.options.get("retries", 1) - 1), factor=self.min_backoff,
                                       max_backoff=self.max_backoff)
            self._enqueue(broker, message, delay)

    def _enqueue(self, broker: dramatiq.Broker, message: Any, delay: int) -> None:
        while True:
            try:
                broker.enqueue(message, delay=delay)
                return
            except REDIS_UNAVAILABLE:
                if not wait_for_redis(broker.client, self.stopping, max_delay=self.max_wait):
                    raise


def close_broker(broker: dramatiq.Broker) -> None:
    """Close the broker's connections so an embedded server can tell it is no longer used."""
    try:
        broker.close()
        client = getattr(broker, "client", None)
        if client is not None:
            client.connection_pool.disconnect()
    except redis.RedisError:
        pass



