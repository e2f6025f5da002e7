"""Which worker processes are alive — written by each worker, read by everything that judges health.

This module is the one place that knows how liveness is kept in Redis. Two
signals, for two questions:

- *Is a worker running?* Each worker process keeps its own record,
  ``<ns>:workers:<broker id>`` (JSON: pid, host, threads, started), rewritten
  every ``BEAT_SECONDS`` with an expiry of ``RECORD_TTL_SECONDS``: present means
  alive, and a worker that dies is gone from the list within seconds. Only
  worker processes write it (``WorkerHeartbeat``, started by
  ``workers.ops.observability.Observability``), so a web or adapter process, which
  also talks to the broker, never counts as a worker.
- *Whose held messages are stranded?* dramatiq's own broker heartbeats, the
  sorted set ``<ns>:__heartbeats__`` (score: milliseconds), written by every
  process that consumes: a consumer silent for longer than the broker's
  ``heartbeat_timeout`` is dead, and what it holds comes back only through
  dramatiq's maintenance (``workers.ops.queue_state.recover_stranded``).

``read_workers`` answers the first (with each worker's broker-heartbeat age),
``silent_consumers`` the second; ``helpdesk status``, ``/readyz``, ``/metrics``,
``/ops`` and the alerts all read them through ``workers.ops.health``.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass

import redis

RECORD_TTL_SECONDS = 15  # a worker whose record is older than this is gone
BEAT_SECONDS = 2.0  # how often a live worker rewrites its record


def record_key(namespace: str, worker_id: str) -> str:
    return f"{namespace}:workers:{worker_id}"


def heartbeats_key(namespace: str) -> str:
    """dramatiq's broker heartbeats: member = broker id, score = last beat in milliseconds."""
    return f"{namespace}:__heartbeats__"


@dataclass(frozen=True)
class WorkerState:
    """A worker process alive now."""

    worker_id: str
    host: str | None
    pid: int | None
    threads: int | None
    started: float | None
    last_heartbeat_age_seconds: float | None  # of its broker heartbeat; None when it has none yet

    def to_dict(self) -> dict[str, object]:
        return {"id": self.worker_id, "host": self.host, "pid": self.pid, "threads": self.threads, "started": self.started,
                "last_heartbeat_age_seconds": self.last_heartbeat_age_seconds}


class WorkerHeartbeat:
    """Keeps this worker process's record alive on a thread of its own, from ``start`` until ``stop``.

    Best effort: a write that fails (Redis away) is skipped, and the next beat
    tries again; the record then expires and the worker is reported missing,
    which is what an operator should see while it cannot reach Redis.
    """

    def __init__(self, client: redis.Redis, namespace: str, *, beat_seconds: float = BEAT_SECONDS,
                 ttl_seconds: int = RECORD_TTL_SECONDS) -> None:
        self.client = client
        self.namespace = namespace
        self.beat_seconds = beat_seconds
        self.ttl_seconds = ttl_seconds
        self._key: str | None = None
        self._record = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, worker_id: str, threads: int) -> None:
        """Write the record now and keep it fresh; ``worker_id`` is the broker id its broker heartbeats carry."""
        self._key = record_key(self.namespace, worker_id)
        self._record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "threads": threads, "started": time.time()})
        self._stop.clear()
        self.beat()
        self._thread = threading.Thread(target=self._run, name="worker-heartbeat", daemon=True)
        self._thread.start()

    def beat(self) -> None:
        if self._key is None:
            return
        try:
            self.client.set(self._key, self._record, ex=self.ttl_seconds)
        except redis.RedisError:
            pass  # liveness reporting must never stop the worker

    def stop(self) -> None:
        """Stop beating and remove the record: a clean stop leaves no ghost for ``RECORD_TTL_SECONDS``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._key is not None:
            try:
                self.client.delete(self._key)
            except redis.RedisError:
                pass

    def _run(self) -> None:
        while not self._stop.wait(self.beat_seconds):
            self.beat()


def read_workers(client: redis.Redis, namespace: str, *, now: float | None = None) -> list[WorkerState]:
    """The worker processes alive now, by id — with the age of each one's broker heartbeat."""
    keys = sorted(client.scan_iter(match=record_key(namespace, "*"), count=100))
    if not keys:
        return []
    pipe = client.pipeline(transaction=False)
    pipe.mget(keys)
    ids = [key.decode().rsplit(":", 1)[1] for key in keys]
    for worker_id in ids:
        pipe.zscore(heartbeats_key(namespace), worker_id)
    records, *beats = pipe.execute()
    now_ms = (now if now is not None else time.time()) * 1000
    workers = []
    for worker_id, raw, beat in zip(ids, records, beats):
        if not raw:
            continue  # expired between the scan and the read: that worker just stopped
        try:
            info = json.loads(raw)
        except ValueError:
            info = {}
        if not isinstance(info, dict):
            info = {}
        workers.append(WorkerState(worker_id, info.get("host"), info.get("pid"), info.get("threads"), info.get("started"),
                                   round((now_ms - beat) / 1000, 1) if beat is not None else None))
    return workers


def silent_consumers(client: redis.Redis, namespace: str, heartbeat_timeout_ms: int, *, now: float | None = None) -> list[str]:
    """Broker ids whose broker heartbeat is older than ``heartbeat_timeout_ms``: dead, whatever they still hold."""
    cutoff = (now if now is not None else time.time()) * 1000 - heartbeat_timeout_ms
    return [member.decode() for member in client.zrangebyscore(heartbeats_key(namespace), 0, cutoff)]
