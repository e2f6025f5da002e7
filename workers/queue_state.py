"""What is in the queues, read straight from dramatiq's Redis keys.

dramatiq keeps, per queue ``q`` under namespace ``ns``: the ready list
``ns:q``; every not-yet-acked message in the hash ``ns:q.msgs`` (ready and in
flight alike); delayed messages (retries waiting for their time) in
``ns:q.DQ.msgs``; dead letters in the sorted set ``ns:q.XQ``; and per worker
the set ``ns:__acks__.<worker>.q`` of messages it holds. Broker heartbeats
are the sorted set ``ns:__heartbeats__`` — written by every process that talks
to the broker (web, adapters, workers alike), so they tell whose held messages
are stranded but not which *workers* live. Worker liveness is read in one
place, ``read_workers``: the ``ns:workers:<id>`` record each worker keeps
alive (``config.broker.Observability``, 15 s expiry).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

import redis
from dramatiq.brokers.redis import MAINTENANCE_SCALE, RedisBroker


@dataclass(frozen=True)
class QueueState:
    queue: str
    ready: int
    delayed: int
    in_flight: int
    dead_lettered: int
    oldest_age_seconds: float | None
    stranded: int  # held by workers whose heartbeat stopped

    @property
    def unfinished(self) -> int:
        return self.ready + self.delayed + self.in_flight

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


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


def read_queue(client: redis.Redis, namespace: str, queue: str, heartbeat_timeout_ms: int) -> QueueState:
    base = f"{namespace}:{queue}"
    pipe = client.pipeline(transaction=False)
    pipe.llen(base)
    pipe.hlen(f"{base}.msgs")
    pipe.hlen(f"{base}.DQ.msgs")
    pipe.zcard(f"{base}.XQ")
    pipe.lindex(base, 0)
    ready, pending, delayed, dead, oldest_id = pipe.execute()
    oldest_age = None
    if oldest_id is not None:
        raw = client.hget(f"{base}.msgs", oldest_id)
        if raw:
            try:
                oldest_age = max(0.0, time.time() - json.loads(raw)["message_timestamp"] / 1000)
            except (ValueError, KeyError, TypeError):
                oldest_age = None
    stranded = 0
    for worker in dead_workers(client, namespace, heartbeat_timeout_ms):
        stranded += client.scard(f"{namespace}:__acks__.{worker}.{queue}")
    return QueueState(queue, ready, delayed, max(0, pending - ready), dead, oldest_age, stranded)


def read_workers(client: redis.Redis, namespace: str) -> list[WorkerState]:
    """The worker processes alive now — the one reading of worker liveness (`helpdesk status`, /readyz, /metrics, alerts)."""
    keys = sorted(client.scan_iter(match=f"{namespace}:workers:*", count=100))
    if not keys:
        return []
    records = client.mget(keys)
    now_ms = time.time() * 1000
    workers = []
    for key, raw in zip(keys, records):
        if not raw:
            continue  # expired between the scan and the read: that worker just stopped
        worker_id = key.decode().rsplit(":", 1)[1]
        try:
            info = json.loads(raw)
        except ValueError:
            info = {}
        beat = client.zscore(f"{namespace}:__heartbeats__", worker_id)
        workers.append(WorkerState(worker_id, info.get("host"), info.get("pid"), info.get("threads"), info.get("started"),
                                   round((now_ms - beat) / 1000, 1) if beat is not None else None))
    return workers


def dead_workers(client: redis.Redis, namespace: str, heartbeat_timeout_ms: int) -> list[str]:
    cutoff = time.time() * 1000 - heartbeat_timeout_ms
    return [w.decode() for w in client.zrangebyscore(f"{namespace}:__heartbeats__", 0, cutoff)]


def recover_stranded(broker: RedisBroker, queues: tuple[str, ...]) -> None:
    """Return messages held by dead workers to their queues now, using dramatiq's own maintenance.

    dramatiq runs maintenance on a small random share of commands; a restarted
    worker should not wait for luck to get back what a killed one held.
    """
    saved = broker.maintenance_chance
    broker.maintenance_chance = MAINTENANCE_SCALE
    try:
        for queue in queues:
            broker.do_qsize(queue)
            broker.do_qsize(f"{queue}.DQ")
    finally:
        broker.maintenance_chance = saved


def is_idle(states: list[QueueState]) -> bool:
    return all(state.unfinished == 0 for state in states)
