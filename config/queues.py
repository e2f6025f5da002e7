"""The queue layout: which queues exist, which actor each message names, and how to put work on them.

One table for every process. Adapters and the web process enqueue by name (they
never import the workers); the worker binds its actors to the same names;
``helpdesk status``, ``dlq`` and ``/metrics`` read the same queues.

| queue | actor | payload | sent by |
|---|---|---|---|
| ``intake`` | ``process_inbound`` | an ``InboundMessage`` as JSON | every intake adapter (``intake.queue.QueueSink``) |
| ``intake`` | ``process_batch`` | up to ``BATCH_MAX_MESSAGES`` messages as JSON, one argument each | adapters reading many at once (a backfill, an import) |
| ``intake`` | ``record_rejected`` | a ``Rejected`` as JSON | adapters, for input they could not turn into a message |
| ``effects`` | ``run_effect`` | an outbox key | whoever committed the outbox row (actors, CLI, web) |
| ``effects`` | ``run_effects`` | up to ``BATCH_MAX_EFFECTS`` outbox keys, one argument each | ``process_batch``, for the rows a batch committed |
| ``scheduled`` | ``run_job`` | a job name | ``helpdesk scheduler`` |
| ``slack`` | ``handle_slack`` | (kind, the event's JSON) | the web process and Socket Mode, once Slack's request is verified |

Nothing heavy is imported here: reading queue names costs nothing, and dramatiq
is imported only by the call that enqueues.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dramatiq

INTAKE_QUEUE = "intake"
EFFECTS_QUEUE = "effects"
SCHEDULED_QUEUE = "scheduled"
SLACK_QUEUE = "slack"
QUEUES = (INTAKE_QUEUE, EFFECTS_QUEUE, SCHEDULED_QUEUE, SLACK_QUEUE)

PROCESS_ACTOR = "process_inbound"
PROCESS_BATCH_ACTOR = "process_batch"
REJECT_ACTOR = "record_rejected"
EFFECT_ACTOR = "run_effect"
EFFECTS_BATCH_ACTOR = "run_effects"
JOB_ACTOR = "run_job"
SLACK_ACTOR = "handle_slack"

# A batch: messages an adapter read together, stored in one transaction (each in a savepoint of its own).
BATCH_MAX_MESSAGES = 50
BATCH_MAX_CHARS = 2_000_000  # of JSON: a larger message travels alone
# The outbox rows of one batch travel together too: carried out one after the other by one worker thread, each
# with the rows it creates right after it (a row that fails goes back on the queue alone, as ``run_effect``).
BATCH_MAX_EFFECTS = 50


def enqueue(broker: "dramatiq.Broker", queue: str, actor: str, *args: str, delay_ms: int | None = None) -> None:
    """Put one message for ``actor`` on ``queue``; returns once the broker has it (raises if it does not)."""
    from dramatiq import Message  # noqa: PLC0415 - only processes that enqueue pay for dramatiq

    broker.enqueue(Message(queue_name=queue, actor_name=actor, args=args, kwargs={}, options={}), delay=delay_ms)


def enqueue_many(broker: "dramatiq.Broker", queue: str, actor: str, args: "list[tuple[str, ...]]") -> None:
    """Put a message for ``actor`` on ``queue`` per item of ``args``, in one round trip to Redis; returns once Redis has them all.

    The messages are those ``enqueue`` would put, sent through dramatiq's own enqueue script, pipelined; on a
    broker without that script (or a dramatiq that lays it out otherwise), one ``enqueue`` at a time.
    """
    from dramatiq import Message  # noqa: PLC0415

    script = getattr(broker, "scripts", {}).get("dispatch") if len(args) > 1 else None
    unpack = getattr(broker, "_max_unpack_size", None)
    if script is None or unpack is None:
        for item in args:
            enqueue(broker, queue, actor, *item)
        return
    from uuid import uuid4  # noqa: PLC0415

    from dramatiq.common import current_millis  # noqa: PLC0415

    pipe = broker.client.pipeline(transaction=False)
    sent = []
    for item in args:
        message = Message(queue_name=queue, actor_name=actor, args=item, kwargs={}, options={"redis_message_id": str(uuid4())})
        broker.emit_before("enqueue", message, None)
        # dramatiq's RedisBroker.enqueue, step for step: (command, timestamp, queue, broker id, heartbeat timeout,
        # dead-message TTL, maintenance (none here), largest unpack, then the message's Redis id and body)
        script(keys=[broker.namespace], args=["enqueue", current_millis(), queue, broker.broker_id, broker.heartbeat_timeout,
                                              broker.dead_message_ttl, 0, unpack(), message.options["redis_message_id"],
                                              message.encode()], client=pipe)
        sent.append(message)
    pipe.execute()
    for message in sent:
        broker.emit_after("enqueue", message, None)


def enqueue_effect(broker: "dramatiq.Broker", key: str) -> None:
    """Queue the carrying-out of an outbox row (the row itself is already committed)."""
    enqueue(broker, EFFECTS_QUEUE, EFFECT_ACTOR, key)


def enqueue_effects(broker: "dramatiq.Broker", keys: "tuple[str, ...] | list[str]") -> None:
    """Queue the carrying-out of several committed outbox rows, in one round trip: ``run_effects`` messages of up
    to ``BATCH_MAX_EFFECTS`` keys (a single key travels as ``run_effect``)."""
    keys = list(keys)
    if len(keys) == 1:
        enqueue_effect(broker, keys[0])
    elif keys:
        chunks = [tuple(keys[i : i + BATCH_MAX_EFFECTS]) for i in range(0, len(keys), BATCH_MAX_EFFECTS)]
        enqueue_many(broker, EFFECTS_QUEUE, EFFECTS_BATCH_ACTOR, chunks)


def enqueue_job(broker: "dramatiq.Broker", name: str) -> None:
    """Queue one run of a periodic job."""
    enqueue(broker, SCHEDULED_QUEUE, JOB_ACTOR, name)
