"""Is intake healthy? One evaluation for `helpdesk status`, `/readyz`, `/metrics` and the ops alerts.

A *problem* has a condition, a subject (a queue, an adapter, a worker) and a
severity: ``unhealthy`` (intake is stuck or losing time: act now) or
``warning`` (someone should look). ``helpdesk status`` exits non-zero when
anything is unhealthy; alerts post each problem once to the ops channel and a
recovery notice when it clears.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import redis
from sqlalchemy import Engine, func, select

from intake.state import AdapterHealth, RedisCheckpointStore
from storage.intake_store import QUARANTINE, TICKET
from workers.queue_state import QueueState, read_queue

if TYPE_CHECKING:
    from config.settings import Settings

QUEUE_AGE_LIMIT_SECONDS = 300.0  # a message ready this long means the workers are not keeping up
ADAPTER_SILENT_SECONDS = 900.0  # no successful sync for this long while an adapter runs


@dataclass(frozen=True)
class Problem:
    condition: str  # queue_stuck | queue_backlog | stranded | no_workers | dead_letters | adapter_failing | adapter_silent
    subject: str
    severity: str  # unhealthy | warning
    detail: str

    @property
    def key(self) -> str:
        return f"{self.condition}:{self.subject}"


@dataclass
class Snapshot:
    queues: list[QueueState]
    workers: list[dict[str, Any]]
    adapters: dict[str, dict[str, Any]]
    throughput: dict[str, dict[str, float]]
    dead_letters_open: int
    tickets: int
    problems: list[Problem] = field(default_factory=list)

    @property
    def status(self) -> str:
        if any(p.severity == "unhealthy" for p in self.problems):
            return "unhealthy"
        return "warning" if self.problems else "ok"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "queues": [q.to_dict() for q in self.queues],
            "workers": self.workers,
            "adapters": self.adapters,
            "throughput_per_minute": self.throughput,
            "dead_letters_open": self.dead_letters_open,
            "tickets": self.tickets,
            "problems": [asdict(p) for p in self.problems],
        }


def desk_snapshot(settings: "Settings", client: redis.Redis, engine: Engine, queues: tuple[str, ...]) -> "Snapshot":
    """The snapshot with the desk's own thresholds: `helpdesk status`, /readyz, /metrics and alerts judge alike."""
    return snapshot(client, settings.redis_namespace, engine, queues, settings.heartbeat_timeout_seconds * 1000,
                    queue_age_limit=settings.alert_queue_age_seconds, adapter_silent=settings.alert_adapter_silent_seconds)


def snapshot(client: redis.Redis, namespace: str, engine: Engine, queues: tuple[str, ...], heartbeat_timeout_ms: int,
             *, queue_age_limit: float = QUEUE_AGE_LIMIT_SECONDS, adapter_silent: float = ADAPTER_SILENT_SECONDS,
             now: float | None = None) -> Snapshot:
    now = now if now is not None else time.time()
    states = [read_queue(client, namespace, q, heartbeat_timeout_ms) for q in queues]
    workers = read_workers(client, namespace)
    adapters = read_adapters(client, namespace)
    with engine.connect() as c:
        dead = c.execute(select(func.count()).select_from(QUARANTINE).where(QUARANTINE.c.kind == "dead_letter", QUARANTINE.c.status == "open")).scalar_one()
        tickets = c.execute(select(func.count()).select_from(TICKET)).scalar_one()
    # Redis may hold letters the database has not mirrored yet (and the database keeps them after Redis expires them)
    dead = max(dead, sum(q.dead_lettered for q in states))
    snap = Snapshot(states, workers, adapters, throughput(client, namespace, now), dead, tickets)
    snap.problems = evaluate(snap, queue_age_limit=queue_age_limit, adapter_silent=adapter_silent, now=now)
    return snap


def evaluate(snap: Snapshot, *, queue_age_limit: float, adapter_silent: float, now: float) -> list[Problem]:
    problems = []
    for q in snap.queues:
        if q.oldest_age_seconds is not None and q.oldest_age_seconds > queue_age_limit:
            problems.append(Problem("queue_stuck", q.queue, "unhealthy",
                                    f"the oldest ready message on {q.queue} has waited {q.oldest_age_seconds:.0f} s"))
        if q.stranded:
            problems.append(Problem("stranded", q.queue, "unhealthy",
                                    f"{q.stranded} message(s) of {q.queue} held by a worker that stopped answering"))
    waiting = sum(q.ready + q.delayed for q in snap.queues)
    if waiting and not snap.workers:
        problems.append(Problem("no_workers", "workers", "unhealthy", f"{waiting} message(s) waiting and no worker alive"))
    if snap.dead_letters_open:
        problems.append(Problem("dead_letters", "dlq", "warning", f"{snap.dead_letters_open} dead letter(s) to look at (helpdesk dlq list)"))
    for name, info in snap.adapters.items():
        success = float(info.get("last_success", 0) or 0)
        error_at = float(info.get("last_error_at", 0) or 0)
        if error_at > success:
            problems.append(Problem("adapter_failing", name, "unhealthy" if now - success > adapter_silent else "warning",
                                    f"{name}: {info.get('last_error', '')[:200]}"))
        elif success and now - success > adapter_silent:
            problems.append(Problem("adapter_silent", name, "warning", f"{name}: no successful sync for {now - success:.0f} s"))
    return problems


def read_workers(client: redis.Redis, namespace: str) -> list[dict[str, Any]]:
    workers = []
    for key in client.scan_iter(match=f"{namespace}:workers:*", count=100):
        raw = client.get(key)
        if raw:
            info = json.loads(raw)
            info["id"] = key.decode().rsplit(":", 1)[1]
            workers.append(info)
    return workers


def read_adapters(client: redis.Redis, namespace: str) -> dict[str, dict[str, Any]]:
    adapters: dict[str, dict[str, Any]] = dict(AdapterHealth(client, namespace).read_all())
    for key, checkpoint in RedisCheckpointStore(client, namespace).all("imap").items():
        adapters.setdefault(f"imap:{key}", {})["checkpoint"] = checkpoint
    return adapters


def throughput(client: redis.Redis, namespace: str, now: float, minutes: int = 5) -> dict[str, dict[str, float]]:
    """Per queue: messages processed, failed and dead-lettered per minute over the last few minutes."""
    current = int(now // 60)
    totals: dict[str, dict[str, float]] = {}
    pipe = client.pipeline(transaction=False)
    keys = []
    for key in client.scan_iter(match=f"{namespace}:stats:*", count=500):
        parts = key.decode().rsplit(":", 2)
        if len(parts) == 3 and parts[2].isdigit() and current - minutes < int(parts[2]) <= current:
            keys.append(parts[1])
            pipe.hgetall(key)
    for queue, values in zip(keys, pipe.execute()):
        bucket = totals.setdefault(queue, {"processed": 0.0, "failed": 0.0, "dead_lettered": 0.0})
        for field_name in bucket:
            bucket[field_name] += float(values.get(field_name.encode(), 0))
    return {q: {k: round(v / minutes, 2) for k, v in t.items()} for q, t in totals.items()}
