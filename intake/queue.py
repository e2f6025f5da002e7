"""The queue sink: hands InboundMessages to the dramatiq ``intake`` queue on Redis.

Adapters address the pipeline actors by the names of ``config.queues``, so the
intake side never imports the workers. Before a message is enqueued its ids are
marked *in flight* (a Redis key with a time-to-live); a reply whose parent is
still in flight waits for it instead of opening a ticket of its own. The worker
clears the mark once the message is stored.

Messages put together (``put_many``, or inside ``with sink.batched():``) travel in
batches — one queue message of up to ``BATCH_MAX_MESSAGES`` — which the worker stores
in one transaction; a message alone travels alone, as ``process_inbound``.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import redis

from config.queues import BATCH_MAX_CHARS, BATCH_MAX_MESSAGES, INTAKE_QUEUE, PROCESS_ACTOR, PROCESS_BATCH_ACTOR, REJECT_ACTOR, enqueue, enqueue_many
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
        self.mark_many([(channel, ids)])

    def mark_many(self, marks: Iterable[tuple[str, Iterable[str]]]) -> None:
        """Mark the ids of several messages, in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for channel, ids in marks:
            for message_id in ids:
                pipe.set(self._key(channel, message_id), 1, ex=self.ttl_seconds)
        pipe.execute()

    def any_inflight(self, channel: str, ids: Iterable[str]) -> bool:
        keys = [self._key(channel, message_id) for message_id in ids]
        return bool(keys) and self.client.exists(*keys) > 0

    def clear(self, channel: str, ids: Iterable[str]) -> None:
        self.clear_many([(channel, ids)])

    def clear_many(self, marks: Iterable[tuple[str, Iterable[str]]]) -> None:
        """Clear the ids of several messages, in one round trip."""
        keys = [self._key(channel, message_id) for channel, ids in marks for message_id in ids]
        if keys:
            self.client.delete(*keys)


def message_ids(message: InboundMessage) -> set[str]:
    """The ids other messages may use to refer to this one."""
    return {message.external_id, *([message.thread.message_id] if message.thread.message_id else [])}


def batches(payloads: Sequence[str], max_messages: int = BATCH_MAX_MESSAGES, max_chars: int = BATCH_MAX_CHARS) -> Iterator[list[str]]:
    """Consecutive runs of ``payloads`` within both bounds (a payload over ``max_chars`` goes alone), in order."""
    batch: list[str] = []
    size = 0
    for payload in payloads:
        if batch and (len(batch) >= max_messages or size + len(payload) > max_chars):
            yield batch
            batch, size = [], 0
        batch.append(payload)
        size += len(payload)
    if batch:
        yield batch


class QueueSink(Sink):
    """Enqueues onto the broker; returns only after Redis accepted the message."""

    def __init__(self, broker: "dramatiq.Broker", inflight: InflightRegistry, *, batch_size: int = BATCH_MAX_MESSAGES) -> None:
        self.broker = broker
        self.inflight = inflight
        self.batch_size = max(1, batch_size)
        self._pending = threading.local()  # each adapter thread batches its own puts

    def put(self, message: InboundMessage) -> None:
        buffer: list[InboundMessage] | None = getattr(self._pending, "buffer", None)
        if buffer is None:
            self.put_many([message])
            return
        buffer.append(message)
        if len(buffer) >= self.batch_size:
            self._flush()

    def put_many(self, messages: Sequence[InboundMessage]) -> None:
        if not messages:
            return
        try:
            self.inflight.mark_many((message.channel, message_ids(message)) for message in messages)
            grouped = list(batches([message.to_json() for message in messages], self.batch_size))
            if len(grouped) == 1 and len(grouped[0]) == 1:
                enqueue(self.broker, INTAKE_QUEUE, PROCESS_ACTOR, grouped[0][0])  # a message alone travels alone
            else:
                enqueue_many(self.broker, INTAKE_QUEUE, PROCESS_BATCH_ACTOR, [tuple(batch) for batch in grouped])
        except redis.RedisError as exc:
            first = messages[0]
            raise SinkError(f"could not enqueue {first.channel}:{first.external_id} (and {len(messages) - 1} more): {exc}") from exc

    @contextmanager
    def batched(self) -> Iterator[None]:
        if getattr(self._pending, "buffer", None) is not None:  # nested: the outer block flushes
            yield
            return
        self._pending.buffer = []
        try:
            yield
            self._flush()
        finally:
            self._pending.buffer = None

    def _flush(self) -> None:
        buffer = self._pending.buffer
        self._pending.buffer = []
        self.put_many(buffer)

    def reject(self, rejected: Rejected) -> None:
        try:
            enqueue(self.broker, INTAKE_QUEUE, REJECT_ACTOR, rejected.to_json())
        except redis.RedisError as exc:
            raise SinkError(f"could not enqueue rejected input {rejected.key}: {exc}") from exc
