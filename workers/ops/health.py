"""Is intake healthy? One evaluation for `helpdesk status`, `/readyz`, `/metrics` and the ops alerts.

A *problem* has a condition, a subject (a queue, an adapter, a worker) and a
severity: ``unhealthy`` (intake is stuck or losing time: act now) or
``warning`` (someone should look). ``helpdesk status`` exits non-zero when
anything is unhealthy; alerts post each problem once to the ops channel and a
recovery notice when it clears.

Adapters (their records are written by ``intake.state.AdapterHealth``):
``adapter_down`` (unhealthy) — its heartbeat is older than ``adapter_down``
seconds and it was not stopped on purpose: the process died or hangs;
``adapter_restarted`` (warning) — a loop crashed and was restarted within
``crash_window`` seconds; ``adapter_stuck`` (unhealthy) — items have waited
above the adapter's checkpoint for longer than ``adapter_silent`` seconds;
``adapter_failing`` / ``adapter_silent`` — the last sync failed / none
succeeded for a long time. Each adapter is read through
``intake.state.AdapterHealth.states``, alike whatever its channel. Workers:
``no_workers`` (unhealthy) — work waits and no worker is alive
(``workers.ops.liveness``, the one reader of liveness). Quarantine:
``dead_letters`` and ``quarantined`` (rejected input) are warnings while any is
open; ``quarantined`` in the snapshot is the number `helpdesk dlq list` shows.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import redis
from sqlalchemy import Engine

from intake.state import AdapterHealth, AdapterState, RedisCheckpointStore
from storage.queries import open_quarantine_counts, ticket_total
from workers.ops.liveness import WorkerState, read_workers
from workers.ops.queue_state import QueueState, read_queue

if TYPE_CHECKING:
    from config.settings import Settings

QUEUE_AGE_LIMIT_SECONDS = 300.0  # a message ready this long means the workers are not keeping up
ADAPTER_SILENT_SECONDS = 900.0  # no successful sync for this long while an adapter runs
ADAPTER_DOWN_SECONDS = 60.0  # a heartbeat this old means the adapter is not running
CRASH_WINDOW_SECONDS = 3600.0  # a crash (and restart) this recent is worth a look


@dataclass(frozen=True)
class Problem:
    condition: str  # queue_stuck | stranded | no_workers | dead_letters | quarantined | adapter_down | adapter_restarted | adapter_stuck | adapter_failing | adapter_silent
    subject: str
    severity: str  # unhealthy | warning
    detail: str

    @property
    def key(self) -> str:
        return f"{self.condition}:{self.subject}"


@dataclass
class Snapshot:
    queues: list[QueueState]
    workers: list[WorkerState]
    adapters: dict[str, AdapterState]
    throughput: dict[str, dict[str, float]]
    dead_letters_open: int
    tickets: int
    rejected_open: int = 0  # quarantined input (unparseable) not replayed yet
    problems: list[Problem] = field(default_factory=list)

    @property
    def quarantined(self) -> int:
        """Open dead letters and rejected input: the rows `helpdesk dlq list` shows."""
        return self.dead_letters_open + self.rejected_open

    @property
    def status(self) -> str:
        if any(p.severity == "unhealthy" for p in self.problems):
            return "unhealthy"
        return "warning" if self.problems else "ok"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "queues": [q.to_dict() for q in self.queues],
            "workers": [w.to_dict() for w in self.workers],
            "adapters": {name: state.to_dict() for name, state in self.adapters.items()},
            "throughput_per_minute": self.throughput,
            "dead_letters_open": self.dead_letters_open,
            "quarantined": self.quarantined,
            "tickets": self.tickets,
            "problems": [asdict(p) for p in self.problems],
        }


def desk_snapshot(settings: "Settings", client: redis.Redis, engine: Engine, queues: tuple[str, ...]) -> "Snapshot":
    """The snapshot with the desk's own thresholds: `helpdesk status`, /readyz, /metrics and alerts judge alike."""
    return snapshot(client, settings.redis_namespace, engine, queues, settings.heartbeat_timeout_seconds * 1000,
                    queue_age_limit=settings.alert_queue_age_seconds, adapter_silent=settings.alert_adapter_silent_seconds,
                    adapter_down=settings.alert_adapter_down_seconds)


def snapshot(client: redis.Redis, namespace: str, engine: Engine, queues: tuple[str, ...], heartbeat_timeout_ms: int,
             *, queue_age_limit: float = QUEUE_AGE_LIMIT_SECONDS, adapter_silent: float = ADAPTER_SILENT_SECONDS,
             adapter_down: float = ADAPTER_DOWN_SECONDS, now: float | None = None) -> Snapshot:
    now = now if now is not None else time.time()
    states = [read_queue(client, namespace, q, heartbeat_timeout_ms) for q in queues]
    workers = read_workers(client, namespace, now=now)
    adapters = read_adapters(client, namespace)
    with engine.connect() as c:
        quarantine = open_quarantine_counts(c)
        tickets = ticket_total(c)
    # Redis may hold letters the database has not mirrored yet (and the database keeps them after Redis expires them)
    dead = max(quarantine.get("dead_letter", 0), sum(q.dead_lettered for q in states))
    snap = Snapshot(states, workers, adapters, throughput(client, namespace, now), dead, tickets, quarantine.get("rejected", 0))
    snap.problems = evaluate(snap, queue_age_limit=queue_age_limit, adapter_silent=adapter_silent, adapter_down=adapter_down, now=now)
    return snap


def evaluate(snap: Snapshot, *, queue_age_limit: float, adapter_silent: float, now: float,
             adapter_down: float = ADAPTER_DOWN_SECONDS, crash_window: float = CRASH_WINDOW_SECONDS) -> list[Problem]:
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
    if snap.rejected_open:
        problems.append(Problem("quarantined", "quarantine", "warning",
                                f"{snap.rejected_open} quarantined input(s) open (helpdesk dlq list --kind rejected)"))
    for name, info in snap.adapters.items():
        problems.extend(adapter_problems(name, info, adapter_silent=adapter_silent, adapter_down=adapter_down,
                                         crash_window=crash_window, now=now))
    return problems


def adapter_problems(name: str, info: Mapping[str, Any], *, adapter_silent: float, adapter_down: float, crash_window: float,
                     now: float) -> list[Problem]:
    """What is wrong with one adapter loop, from its state (its health record and checkpoint, or their dict form)."""
    state = AdapterState.from_dict(name, info)
    problems = []
    if state.running and not state.stopped_on_purpose and now - state.running > adapter_down:
        problems.append(Problem("adapter_down", name, "unhealthy", f"{name} is not running: no heartbeat for {now - state.running:.0f} s"))
    if state.last_crash_at and now - state.last_crash_at < crash_window:
        problems.append(Problem("adapter_restarted", name, "warning",
                                f"{name} crashed and was restarted ({state.restarts or '?'} restart(s)); last: "
                                f"{state.last_crash.splitlines()[0][:200] if state.last_crash else '?'}"))
    waiting, behind = state.waiting_since, state.behind
    if waiting and behind > 0 and now - max(waiting, state.checkpoint_moved_at) > adapter_silent:
        problems.append(Problem("adapter_stuck", name, "unhealthy",
                                f"{name}: {behind} message(s) above the checkpoint have waited {now - waiting:.0f} s"))
    if state.last_error_at > state.last_success:
        problems.append(Problem("adapter_failing", name, "unhealthy" if now - state.last_success > adapter_silent else "warning",
                                f"{name}: {state.last_error[:200]}"))
    elif state.last_success and now - state.last_success > adapter_silent and not state.stopped_on_purpose:
        problems.append(Problem("adapter_silent", name, "warning", f"{name}: no successful sync for {now - state.last_success:.0f} s"))
    return problems


def read_adapters(client: redis.Redis, namespace: str) -> dict[str, AdapterState]:
    """Every adapter loop's state, read alike for every channel."""
    return AdapterHealth(client, namespace).states(RedisCheckpointStore(client, namespace))


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
