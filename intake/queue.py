"""The queue sink: hands InboundMessages to the dramatiq ``intake`` queue on Redis.

Adapters address the pipeline actors by the names of ``config.queues``, so the
intake side never imports the workers. Before a message is enqueued its ids are
marked *in flight* (a Redis key with a time-to-live); a reply whose parent is
still in flight waits for it instead of opening a ticket of its own. The worker
clears the mark once the message is stored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

import redis

from config.queues import INTAKE_QUEUE, PROCESS_ACTOR, REJECT_ACTOR, enqueue
from intake.base import Rejected, Sink
from intake.errors import SinkError
from intake.message import InboundMessage

if TYPE_CHECKING:
    import dramatiq


class InflightRegistry:
    """Which message ids are queued but not yet stored, per channel."""

    def __init__(self, client: redis.Redis, namespace: str, ttl_seconds: int = 3600) -> None:
        self.client = client
        self.namespace = namespace
        self.ttl_seconds = ttl_seconds

    def _key(self, channel: str, message_id: str) -> str:
        digest = hashlib.sha1(message_id.encode("utf-8", "surrogatepass")).hexdigest()
        return f"{self.namespace}:inflight:{channel}:{digest}"

    def mark(self, channel: str, ids: Iterable[str]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for message_id in ids:
            pipe.set(self._key(channel, message_id), 1, ex=self.ttl_seconds)
        pipe.execute()

    def any_inflight(self, channel: str, ids: Iterable[str]) -> bool:
        keys = [self._key(channel, message_id) for message_id in ids]
        return bool(keys) and self.client.exists(*keys) > 0

    def clear(self, channel: str, ids: Iterable[str]) -> None:
        keys = [self._key(channel, message_id) for message_id in ids]
        if keys:
            self.client.delete(*keys)


def message_ids(message: InboundMessage) -> set[str]:
    """The ids other messages may use to refer to this one."""
    return {message.external_id, *([message.thread.message_id] if message.thread.message_id else [])}


class QueueSink(Sink):
    """Enqueues onto the broker; returns only after Redis accepted the message."""

    def __init__(self, broker: "dramatiq.Broker", inflight: InflightRegistry) -> None:
        self.broker = broker
        self.inflight = inflight

    def put(self, message: InboundMessage) -> None:
        try:
            self.inflight.mark(message.channel, message_ids(message))
            enqueue(self.broker, INTAKE_QUEUE, PROCESS_ACTOR, message.to_json())
        except redis.RedisError as exc:
            raise SinkError(f"could not enqueue {message.channel}:{message.external_id}: {exc}") from exc

    def reject(self, rejected: Rejected) -> None:
        try:
            enqueue(self.broker, INTAKE_QUEUE, REJECT_ACTOR, rejected.to_json())
        except redis.RedisError as exc:
            raise SinkError(f"could not enqueue rejected input {rejected.key}: {exc}") from exc
