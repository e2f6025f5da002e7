"""`helpdesk scheduler`: enqueue the periodic jobs; the workers run them.

Each tick enqueues every job once — a Redis ``SET NX`` per (job, tick) makes
sure of it even with two schedulers running (one per machine, say). The jobs
themselves are idempotent, so a duplicate would be harmless anyway.
"""

from __future__ import annotations

import threading
import time

import dramatiq

from config.queues import enqueue_job

JOB_NAMES = ("outbox", "backlog", "away", "sla", "digest", "alerts", "retention")


def tick(broker: dramatiq.Broker, namespace: str, tick_seconds: int, now: float | None = None) -> list[str]:
    """Enqueue the jobs of the current tick that nobody enqueued yet; returns their names."""
    window = int((now if now is not None else time.time()) // tick_seconds)
    enqueued = []
    for name in JOB_NAMES:
        if broker.client.set(f"{namespace}:schedule:{name}:{window}", 1, nx=True, ex=tick_seconds * 3):
            enqueue_job(broker, name)
            enqueued.append(name)
    return enqueued


def run_scheduler(broker: dramatiq.Broker, namespace: str, tick_seconds: int, stop: threading.Event) -> None:
    while not stop.is_set():
        tick(broker, namespace, tick_seconds)
        stop.wait(tick_seconds - (time.time() % tick_seconds))
