"""What is in the queues, read straight from dramatiq's Redis keys.

dramatiq keeps, per queue ``q`` under namespace ``ns``: the ready list
``ns:q``; every not-yet-acked message in the hash ``ns:q.msgs`` (ready and in
flight alike); delayed messages (retries waiting for their time) in
``ns:q.DQ.msgs``; dead letters in the sorted set ``ns:q.XQ``; and per consumer
the set ``ns:__acks__.<broker id>.q`` of messages it holds. What a consumer
holds is *stranded* once its broker heartbeat has gone silent
(``workers.ops.liveness.silent_consumers``, the one reader of liveness).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

import redis
from dramatiq.brokers.redis import MAINTENANCE_SCALE, RedisBroker

from workers.ops.liveness import silent_consumers


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


def _ask_counts(pipe: redis.client.Pipeline, base: str) -> None:
    """Queue on ``pipe`` what ``_counts`` reads back: ready, not yet acked, delayed."""
    pipe.llen(base)
    pipe.hlen(f"{base}.msgs")
    pipe.hlen(f"{base}.DQ.msgs")


def _counts(ready: int, pending: int, delayed: int) -> tuple[int, int, int]:
    """(ready, delayed, in flight): the not-yet-acked messages that are not ready are in a worker's hands."""
    return ready, delayed, max(0, pending - ready)


def read_queue(client: redis.Redis, namespace: str, queue: str, heartbeat_timeout_ms: int) -> QueueState:
    base = f"{namespace}:{queue}"
    pipe = client.pipeline(transaction=False)
    _ask_counts(pipe, base)
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
    for worker in silent_consumers(client, namespace, heartbeat_timeout_ms):
        stranded += client.scard(f"{namespace}:__acks__.{worker}.{queue}")
    return QueueState(queue, *_counts(ready, pending, delayed), dead, oldest_age, stranded)


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


def unfinished(client: redis.Redis, namespace: str, queues: tuple[str, ...]) -> int:
    """Messages of ``queues`` not yet done — ready, delayed or in a worker's hands — as ``QueueState.unfinished``
    counts them, read in one round trip (a worker waiting to be idle asks every 50 ms: ``read_queue`` costs three
    round trips per queue and decodes the oldest message, a batch of mails, to tell its age)."""
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        _ask_counts(pipe, f"{namespace}:{queue}")
    answers = pipe.execute()
    return sum(sum(_counts(*answers[i : i + 3])) for i in range(0, len(answers), 3))
