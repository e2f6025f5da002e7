"""Worker metrics: per-queue throughput and failures in Redis, latency histograms in Prometheus, and the worker's liveness.

Two stores, each for what it does best:

- Throughput (processed, failed, skipped, dead-lettered per queue and minute)
  is counted in memory and flushed to Redis (``<ns>:stats:<queue>:<minute>``
  hashes, kept a day) by a background thread, so the hot path adds no round
  trip. Every worker on every host adds to the same keys, so ``helpdesk
  status`` shows the desk's whole rate whichever host it runs on.
- Latency (``helpdesk_intake_to_ticket_seconds``: from receipt by an adapter
  to the stored message) is a ``prometheus_client`` histogram in multiprocess
  mode: each worker process writes its samples to a file of its own in the
  host's metrics folder (``metrics_dir``, shared with dramatiq's Prometheus
  middleware), and ``/metrics`` merges the files at scrape time
  (``ops.metrics``). Files are per host: with workers on several machines,
  each host's samples are scraped there (``HELPDESK_WORKER_METRICS_PORT``)
  and Prometheus sums them — the usual way to aggregate a histogram.
  ``use_metrics_dir`` must run where a worker process starts, before anything
  imports ``prometheus_client`` (it picks its storage once, at import).

The middleware also starts and stops the worker's liveness record
(``workers.ops.liveness.WorkerHeartbeat``). Only a worker process adds it
(``ops.runtime.prepare_worker``): processes that merely enqueue have nothing
to count.
"""

from __future__ import annotations

import functools
import os
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING

import dramatiq
import redis
from dramatiq.middleware import Middleware

from workers.ops.liveness import WorkerHeartbeat

if TYPE_CHECKING:
    from prometheus_client import Histogram

INTAKE_TO_TICKET = "helpdesk_intake_to_ticket_seconds"
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
# The histograms a worker keeps: the name an actor observes → (the name /metrics exposes, its help).
HISTOGRAMS = {"intake_latency_seconds": (INTAKE_TO_TICKET, "From receipt by an adapter to the stored message.")}
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's switch to multiprocess mode
DRAMATIQ_ENV = "dramatiq_prom_db"  # where dramatiq's Prometheus middleware keeps its files


def metrics_dir(environ: MutableMapping[str, str] | None = None) -> Path:
    """The folder of this host's worker metrics files: ``PROMETHEUS_MULTIPROC_DIR`` when set, else dramatiq's
    (``dramatiq_prom_db``, by default ``<tmp>/dramatiq-prometheus``), so dramatiq's counters and the desk's
    histograms are one set of files that one reader merges."""
    environ = os.environ if environ is None else environ
    return Path(environ.get(MULTIPROC_ENV) or environ.get(DRAMATIQ_ENV) or Path(tempfile.gettempdir()) / "dramatiq-prometheus")


def use_metrics_dir(environ: MutableMapping[str, str] | None = None) -> Path:
    """Where a worker process starts: put it — and the processes it starts — in multiprocess mode, in ``metrics_dir``.

    Call it before anything imports ``prometheus_client`` or ``dramatiq.middleware.prometheus``: both read
    these variables once, at import. Stale files of processes gone are kept: their counts are part of the
    histogram's running total (Prometheus expects totals that only grow).
    """
    environ = os.environ if environ is None else environ
    path = metrics_dir(environ)
    path.mkdir(parents=True, exist_ok=True)
    environ[MULTIPROC_ENV] = environ[DRAMATIQ_ENV] = str(path)
    return path


@functools.cache
def histogram(metric: str) -> "Histogram":
    """This process's histogram ``metric`` (a key of ``HISTOGRAMS``), made on first use — after ``use_metrics_dir``."""
    from prometheus_client import Histogram  # noqa: PLC0415 - not at import: the multiprocess folder is set up first

    name, documentation = HISTOGRAMS[metric]
    return Histogram(name, documentation, buckets=BUCKETS, registry=None)  # /metrics reads the files, not a registry


def observability(broker: dramatiq.Broker) -> "Observability | None":
    """The broker's ``Observability`` middleware, if this process added one."""
    return next((m for m in broker.middleware if isinstance(m, Observability)), None)


class Observability(Middleware):
    """Counts per-queue throughput and failures, keeps the latency histograms, and the worker's liveness record."""

    FLUSH_SECONDS = 2.0
    TTL_SECONDS = 24 * 3600

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
        self.heartbeat = WorkerHeartbeat(client, namespace)
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, int], dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self._started: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def observe(self, metric: str, seconds: float) -> None:
        """Add an observation to the histogram ``metric`` (``HISTOGRAMS``: ``intake_latency_seconds``)."""
        try:
            histogram(metric).observe(seconds)
        except OSError:
            pass  # metrics are best effort: a full disk must never fail a message

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # the broker id is the one its broker heartbeats carry: the liveness reader joins the two
        self.heartbeat.start(str(getattr(broker, "broker_id", id(broker))), worker.worker_threads)
        self._thread = threading.Thread(target=self._flush_loop, name="observability-flush", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()
        self.heartbeat.stop()

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
        while not self._stop.wait(self.FLUSH_SECONDS):
            self.flush()

    def flush(self) -> None:
        with self._lock:
            counts, self._counts = self._counts, defaultdict(lambda: defaultdict(float))
        if not counts:
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            for (queue, minute), values in counts.items():
                key = f"{self.namespace}:stats:{queue}:{minute}"
                for field, value in values.items():
                    pipe.hincrbyfloat(key, field, value)
                pipe.expire(key, self.TTL_SECONDS)
            pipe.execute()
        except redis.RedisError:
            # Statistics are best effort: losing a flush must never fail a message.
            pass
