"""The queue layout: which queues exist, which actor each message names, and how to put work on them.

One table for every process. Adapters and the web process enqueue by name (they
never import the workers); the worker binds its actors to the same names;
``helpdesk status``, ``dlq`` and ``/metrics`` read the same queues.

| queue | actor | payload | sent by |
|---|---|---|---|
| ``intake`` | ``process_inbound`` | an ``InboundMessage`` as JSON | every intake adapter (``intake.queue.QueueSink``) |
| ``intake`` | ``record_rejected`` | a ``Rejected`` as JSON | adapters, for input they could not turn into a message |
| ``effects`` | ``run_effect`` | an outbox key | whoever committed the outbox row (actors, CLI, web) |
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
REJECT_ACTOR = "record_rejected"
EFFECT_ACTOR = "run_effect"
JOB_ACTOR = "run_job"
SLACK_ACTOR = "handle_slack"


def enqueue(broker: "dramatiq.Broker", queue: str, actor: str, *args: str) -> None:
    """Put one message for ``actor`` on ``queue``; returns once the broker has it (raises if it does not)."""
    from dramatiq import Message  # noqa: PLC0415 - only processes that enqueue pay for dramatiq

    broker.enqueue(Message(queue_name=queue, actor_name=actor, args=args, kwargs={}, options={}))


def enqueue_effect(broker: "dramatiq.Broker", key: str) -> None:
    """Queue the carrying-out of an outbox row (the row itself is already committed)."""
    enqueue(broker, EFFECTS_QUEUE, EFFECT_ACTOR, key)


def enqueue_job(broker: "dramatiq.Broker", name: str) -> None:
    """Queue one run of a periodic job."""
    enqueue(broker, SCHEDULED_QUEUE, JOB_ACTOR, name)
