"""Worker metrics: per-queue throughput, failures and processing time, and each worker's liveness record.

Counts are kept in memory and flushed to Redis by a background thread, so the
hot path adds no round trip. ``helpdesk status``, ``/readyz``, ``/metrics`` and
the alerts read them back (``workers.queue_state``, ``workers.health``).
Only a worker process adds this middleware (``ops.runtime.prepare_worker``):
processes that merely enqueue have nothing to count.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections import defaultdict

import dramatiq
import redis
from dramatiq.middleware import Middleware


def observability(broker: dramatiq.Broker) -> "Observability | None":
    """The broker's ``Observability`` middleware, if this process added one."""
    return next((m for m in broker.middleware if isinstance(m, Observability)), None)


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
