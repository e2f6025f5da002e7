"""Prometheus metrics of the web process, gathered at scrape time from Redis, the database and the workers' files.

dramatiq's Prometheus middleware counts messages but exposes no queue depth;
``HelpdeskCollector`` adds it, and the helpdesk's own measures, from Redis
and the database (database-backed families are cached briefly so a tight
scrape interval costs the database little). ``WorkerMetricsCollector`` merges
what the worker processes of this host write in prometheus_client's
multiprocess files (``workers.ops.observability.metrics_dir``): dramatiq's
counters and durations, and the intake → stored-message latency histogram.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from sqlalchemy import Engine

from config.settings import Settings
from storage.queries import ticket_measures
from workers.ops.health import desk_snapshot
from workers.ops.observability import BUCKETS, HISTOGRAMS, INTAKE_TO_TICKET, metrics_dir

CONFIDENCE_BUCKETS = (0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)


def adapter_label(name: str) -> str:
    """An adapter's name without its account (a login at a host): ``imap:user@host/INBOX`` → ``imap:3f2a1b9c/INBOX``.

    The account becomes the first 8 hex digits of its SHA-256: stable across scrapes, the same for every
    folder of one mailbox, and telling nobody the login or the host.
    """
    kind, sep, rest = name.partition(":")
    if not sep:
        return name
    account, slash, folder = rest.partition("/")
    account, colon, part = account.partition(":")
    digest = hashlib.sha256(account.encode("utf-8")).hexdigest()[:8]
    return f"{kind}:{digest}" + (f":{part}" if colon else "") + (f"/{folder}" if slash else "")


class HelpdeskCollector(Collector):
    def __init__(self, settings: Settings, client: Any, engine: Engine, queues: tuple[str, ...], cache_seconds: float = 15.0) -> None:
        self.settings = settings
        self.client = client
        self.namespace = settings.redis_namespace
        self.engine = engine
        self.queues = queues
        self.cache_seconds = cache_seconds
        self._cached: tuple[float, list[Any]] | None = None
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Any]:
        yield from self._queues()
        yield from self._database()

    def _queues(self) -> Iterator[Any]:
        snap = desk_snapshot(self.settings, self.client, self.engine, self.queues)
        depth = GaugeMetricFamily("helpdesk_queue_messages", "Messages per queue and state.", labels=["queue", "state"])
        age = GaugeMetricFamily("helpdesk_queue_oldest_age_seconds", "Age of the oldest ready message.", labels=["queue"])
        for q in snap.queues:
            for state in ("ready", "delayed", "in_flight", "dead_lettered", "stranded"):
                depth.add_metric([q.queue, state], getattr(q, state))
            age.add_metric([q.queue], q.oldest_age_seconds or 0.0)
        yield depth
        yield age
        yield GaugeMetricFamily("helpdesk_workers_alive", "Worker processes with a live heartbeat.", value=len(snap.workers))
        yield GaugeMetricFamily("helpdesk_dead_letters_open", "Dead letters not replayed or purged.", value=snap.dead_letters_open)
        yield GaugeMetricFamily("helpdesk_quarantined_open", "Dead letters and rejected input not replayed or purged (helpdesk dlq list).",
                                value=snap.quarantined)
        yield GaugeMetricFamily("helpdesk_healthy", "1 when intake has no unhealthy problem.", value=0 if snap.status == "unhealthy" else 1)
        success = GaugeMetricFamily("helpdesk_adapter_last_success_timestamp_seconds", "Last successful sync.", labels=["adapter"])
        failure = GaugeMetricFamily("helpdesk_adapter_last_error_timestamp_seconds", "Last error.", labels=["adapter"])
        running = GaugeMetricFamily("helpdesk_adapter_running", "1 while the adapter loop's heartbeat is fresh.", labels=["adapter"])
        heartbeat = GaugeMetricFamily("helpdesk_adapter_heartbeat_timestamp_seconds", "Last heartbeat of the adapter loop.", labels=["adapter"])
        restarts = CounterMetricFamily("helpdesk_adapter_restarts", "Times the adapter loop crashed and was restarted.", labels=["adapter"])
        down = {adapter_label(p.subject) for p in snap.problems if p.condition == "adapter_down"}
        for full_name, state in snap.adapters.items():
            name = adapter_label(full_name)
            if state.last_success:
                success.add_metric([name], state.last_success)
            if state.last_error_at:
                failure.add_metric([name], state.last_error_at)
            if state.running:
                running.add_metric([name], 0 if state.stopped_on_purpose or name in down else 1)
                heartbeat.add_metric([name], state.running)
            if state.running or state.restarts:
                restarts.add_metric([name], float(state.restarts))
        yield success
        yield failure
        yield running
        yield heartbeat
        yield restarts

    def _database(self) -> Iterator[Any]:
        with self._lock:
            if self._cached is None or time.monotonic() - self._cached[0] > self.cache_seconds:
                self._cached = (time.monotonic(), list(self._read_database()))
            families = self._cached[1]
        yield from families

    def _read_database(self) -> Iterator[Any]:
        measures = ticket_measures(self.engine, CONFIDENCE_BUCKETS)
        tickets = GaugeMetricFamily("helpdesk_tickets", "Tickets by channel, enquiry type and sector.", labels=["channel", "type", "sector"])
        for channel, etype, sector, n in measures.by_channel_type_sector:
            tickets.add_metric([channel, etype, sector], n)
        yield tickets
        statuses = GaugeMetricFamily("helpdesk_tickets_by_status", "Tickets by status.", labels=["status"])
        for status, n in measures.by_status:
            statuses.add_metric([status], n)
        yield statuses
        confidence = HistogramMetricFamily("helpdesk_classification_confidence", "Confidence of the enquiry type of tickets.")
        cumulative = [(str(b), float(n)) for b, n in zip(CONFIDENCE_BUCKETS, measures.confidence_at_most)]
        confidence.add_metric([], cumulative + [("+Inf", float(measures.confidence_count))], measures.confidence_sum)
        yield confidence
        yield CounterMetricFamily("helpdesk_sla_breaches", "SLA targets breached.", value=measures.sla_breaches)


class WorkerMetricsCollector(Collector):
    """What the worker processes of this host recorded (prometheus_client's multiprocess files), merged at each scrape.

    The intake → stored-message histogram is always there — all zeros until a
    worker on this host stores a message — so dashboards and alerts never lose it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def collect(self) -> Iterator[Any]:
        seen = False
        if self.path.is_dir():
            for family in MultiProcessCollector(None, path=str(self.path)).collect():
                seen = seen or family.name == INTAKE_TO_TICKET
                yield family
        if not seen:
            empty = HistogramMetricFamily(INTAKE_TO_TICKET, HISTOGRAMS["intake_latency_seconds"][1])
            empty.add_metric([], [(floatToGoString(b), 0.0) for b in BUCKETS] + [("+Inf", 0.0)], 0.0)
            yield empty


def dramatiq_collector() -> Collector:
    """The workers' metrics on this host — dramatiq's own and the desk's latency histogram (``WorkerMetricsCollector``)."""
    return WorkerMetricsCollector(metrics_dir())
