"""A live worker hands back the messages Redis says it holds but it has forgotten.

dramatiq moves each fetched message into the set ``ns:__acks__.<broker>.<queue>``
and removes it there on ack. When a worker dies, dramatiq's maintenance hands
its set back once its heartbeat stops. A worker that stays alive can still end
up holding messages it no longer knows about, and nothing returns those while
its heartbeat goes on:

- a fetch ran in Redis but its reply was lost when the connection dropped;
- a consumer reconnected and dropped its delay queue;
- Redis restarted from an append-only file that lacked the last second, so an
  ack it had confirmed is gone.

``Holdings.check`` compares that set with what the process holds in memory:
the work queue, every consumer's delay queue and prefetch cache, and the
messages a worker thread is processing or acknowledging. It requeues ids that
are missing from memory on two readings in a row. Every effect is idempotent
by key, so a message that was in fact finished costs one more no-op.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from queue import Queue

import dramatiq
import structlog
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Middleware

log = structlog.get_logger("helpdesk.worker")


class InHand(Middleware):
    """The ids of messages a worker thread has taken, from processing until the ack or nack is stored."""

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._lock = threading.Lock()

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        with self._lock:
            self._ids.add(_redis_id(message))

    def after_ack(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        self._release(message)

    def after_nack(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        self._release(message)

    def _release(self, message: dramatiq.MessageProxy) -> None:
        with self._lock:
            self._ids.discard(_redis_id(message))

    def ids(self) -> set[str]:
        with self._lock:
            return set(self._ids)


def in_hand(broker: RedisBroker) -> InHand:
    """The broker's ``InHand`` middleware, added on first use."""
    for middleware in broker.middleware:
        if isinstance(middleware, InHand):
            return middleware
    middleware = InHand()
    broker.add_middleware(middleware)
    return middleware


class Holdings:
    """Compares what Redis says this worker holds with what it holds in memory."""

    def __init__(self, broker: RedisBroker, worker: dramatiq.Worker, taken: InHand) -> None:
        self.broker = broker
        self.worker = worker
        self.taken = taken
        self._suspects: set[tuple[str, str]] = set()

    def check(self) -> dict[str, int]:
        """Requeue what was held in Redis only, on this reading and the one before; returns the count per queue."""
        queues = list(self.worker.consumers)
        pipe = self.broker.client.pipeline(transaction=False)
        for queue in queues:
            pipe.smembers(f"{self.broker.namespace}:__acks__.{self.broker.broker_id}.{queue}")
        in_redis = dict(zip(queues, pipe.execute()))
        held = self.held_in_memory()  # read after Redis: a fetch in between is in memory, not yet in the reading
        forgotten = {(queue, raw.decode()) for queue, ids in in_redis.items() for raw in ids} - {
            (queue, mid) for queue in queues for mid in held}
        confirmed = forgotten & self._suspects
        self._suspects = forgotten - confirmed
        returned: dict[str, int] = {}
        for queue in queues:
            ids = sorted(mid for q, mid in confirmed if q == queue)
            if ids:
                self.broker.do_requeue(queue, *ids)
                returned[queue] = len(ids)
        if returned:
            log.warning("requeued messages this worker held in Redis but no longer in memory", queues=returned)
        return returned

    def held_in_memory(self) -> set[str]:
        ids = self.taken.ids()
        ids.update(_redis_id(item.message) for item in _snapshot(self.worker.work_queue))
        for thread in list(self.worker.consumers.values()):
            ids.update(_redis_id(item.message) for item in _snapshot(thread.delay_queue))
            consumer = thread.consumer
            for data in list(getattr(consumer, "message_cache", None) or ()):
                if data is not None:
                    ids.add(Message.decode(data).options.get("redis_message_id", ""))
        return ids


def _snapshot(queue: Queue) -> Iterable:
    with queue.mutex:
        return list(queue.queue)


def _redis_id(message: dramatiq.Message | dramatiq.MessageProxy) -> str:
    return str(message.options.get("redis_message_id", ""))
