"""The actors, bound to a broker by ``register_actors`` (nothing is registered at import time); the services
they run on are built by ``workers.services.build_services``.

A batch (``process_batch``: messages an adapter read together) is stored in one transaction, each
message in a savepoint of its own; a message the batch could not store goes back on the queue alone, as
``process_inbound``, before the batch is acknowledged, and is handled there as below.

Side effects travel as outbox keys: one key as ``run_effect``, a batch's keys together as ``run_effects``.
Either carries out each key and then, in the same call, the rows that key created (an assignment's Slack
card, say), rather than queueing them: every row is idempotent by its key, so one queue message may do a
ticket's whole chain. A key that fails inside ``run_effects``, or a follow-up that fails, goes back on the
queue alone, as ``run_effect`` (with its own retries and dead letter), and the rest go on; the first key of
``run_effect`` fails its message, as before. An outage fails the whole message, to be delivered again once
the service answers: what was done is skipped by its key.

Failure handling, by kind:
- invalid input (an undecodable payload, data the database refuses) is listed
  in ``throws``: dead-lettered at once with its reason, never retried;
- a reply whose parent is still queued raises ``Retry`` with a short delay;
- Redis or the database unreachable is an outage, not a failure of the
  message: translated at this boundary into ``ServiceUnavailable``, which puts
  the message back without counting a retry (``config.broker.Retries``) and
  pauses the worker until the service answers (``workers.ops.middleware.Outages``);
- anything else is transient: retried with bounded exponential backoff by
  dramatiq's Retries middleware.
"""

from __future__ import annotations

import functools
import json
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

import dramatiq
import structlog
from dramatiq.middleware import CurrentMessage
from sqlalchemy.exc import DataError

from config.broker import redis_unavailable
from config.errors import ServiceUnavailable
from intake.base import Rejected
from intake.errors import MessageDecodeError
from intake.message import InboundMessage
from config.queues import (EFFECT_ACTOR, EFFECTS_BATCH_ACTOR, EFFECTS_QUEUE, INTAKE_QUEUE, JOB_ACTOR, PROCESS_ACTOR, PROCESS_BATCH_ACTOR, REJECT_ACTOR,
                           SCHEDULED_QUEUE, SLACK_ACTOR, SLACK_QUEUE, enqueue, enqueue_effect, enqueue_effects)
from storage.db import is_unavailable as database_unavailable
from workers.errors import EffectRefused, GroupFailed, ParentInFlight, RetryLater
from workers.ops.observability import observability
from storage.models import utcnow

if TYPE_CHECKING:
    from workers.services import Services

INVALID_INPUT = (MessageDecodeError, DataError)
MAX_PARENT_WAIT_DELAY_MS = 5000
MAX_EFFECTS_PER_MESSAGE = 500  # keys and follow-ups one effects message carries out; the rest are queued
EFFECTS_TOGETHER = 50  # rows on the database alone carried out in one transaction, with one writer at a time (SQLite)
EFFECTS_SHARE_OF_TIME_LIMIT = 0.25  # and for at most this share of a message's time limit (slow channels), then the same
log = structlog.get_logger("helpdesk.effects")


def parent_wait_schedule(wait_seconds: int, max_retries: int) -> list[int]:
    """Delays (ms) for a reply waiting on its parent: doubling from 100 ms, capped, within the budget."""
    delays, total, delay = [], 0, 100
    while total + delay <= wait_seconds * 1000 and len(delays) < max(0, max_retries - 1):
        delays.append(delay)
        total += delay
        delay = min(delay * 2, MAX_PARENT_WAIT_DELAY_MS)
    return delays


def unavailable_component(exc: BaseException) -> str | None:
    """``redis`` or ``database`` when ``exc`` (or what caused it) says that service cannot be reached."""
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return None
        if redis_unavailable(seen):
            return "redis"
        if database_unavailable(seen):
            return "database"
        seen = seen.__cause__ or seen.__context__
    return None


def outage_aware(fn: Callable[..., None]) -> Callable[..., None]:
    """Raise ``ServiceUnavailable`` when the actor failed because Redis or the database is unreachable."""

    @functools.wraps(fn)
    def run(*args: object, **kwargs: object) -> None:
        try:
            return fn(*args, **kwargs)
        except (dramatiq.Retry, ServiceUnavailable):
            raise
        except Exception as exc:
            component = unavailable_component(exc)
            if component is None:
                raise
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ServiceUnavailable(component, f"{type(exc).__name__}: {detail}"[:500]) from exc

    return run


def register_actors(broker: dramatiq.Broker, services: Services) -> dict[str, dramatiq.Actor]:
    pipeline = services.pipeline
    store = services.store
    waits = parent_wait_schedule(services.settings.parent_wait_seconds, services.settings.max_retries)
    prefix = services.settings.ticket_prefix
    metrics = observability(broker)

    def process_inbound(payload: str) -> None:
        services.models.refresh()
        message = InboundMessage.from_json(payload)
        current = CurrentMessage.get_current_message()
        retries = current.options.get("retries", 0) if current is not None else 0
        delivery_id = current.message_id if current is not None else f"direct:{message.content_hash}"
        structlog.contextvars.bind_contextvars(channel=message.channel, external_id=message.external_id[:120])
        try:
            outcome = pipeline.process(message, delivery_id, wait_for_parent=retries < len(waits))
        except ParentInFlight as exc:
            raise dramatiq.Retry(str(exc), delay=waits[retries]) from exc
        for key in outcome.effects:
            enqueue_effect(broker, key)
        if metrics is not None and outcome.kind in ("created", "threaded", "automated"):
            metrics.observe("intake_latency_seconds", (utcnow() - message.received_at).total_seconds())
        ticket = f"{prefix}-{outcome.ticket_id}" if outcome.ticket_id else None
        structlog.contextvars.bind_contextvars(outcome=outcome.kind, ticket=ticket)

    def process_batch(*payloads: str) -> None:
        services.models.refresh()
        current = CurrentMessage.get_current_message()
        batch_id = current.message_id if current is not None else "direct"
        items: list[tuple[InboundMessage, str]] = []
        positions: list[int] = []
        alone: list[tuple[int, int | None]] = []  # (position in payloads, delay in ms) to go again as single messages
        for position, payload in enumerate(payloads):
            try:
                items.append((InboundMessage.from_json(payload), f"{batch_id}:{position}"))
                positions.append(position)
            except MessageDecodeError:
                alone.append((position, None))  # dead-lettered on its own, with its reason
        result = pipeline.process_batch(items, fatal=lambda exc: unavailable_component(exc) is not None)
        alone.extend((positions[left.index], waits[0] if left.parent_in_flight and waits else None) for left in result.left)
        for position, delay in sorted(alone):
            enqueue(broker, INTAKE_QUEUE, PROCESS_ACTOR, payloads[position], delay_ms=delay)
        enqueue_effects(broker, result.effects)
        if metrics is not None:
            now = utcnow()
            for index, outcome in result.outcomes.items():
                if outcome.kind in ("created", "threaded", "automated"):
                    metrics.observe("intake_latency_seconds", (now - items[index][0].received_at).total_seconds())
        kinds = Counter(outcome.kind for outcome in result.outcomes.values())
        structlog.contextvars.bind_contextvars(batch=len(payloads), alone=len(alone), **{f"n_{k}": v for k, v in kinds.items()})

    def record_rejected(payload: str) -> None:
        rejected = Rejected.from_json(payload)
        with store.transaction() as tx:
            tx.quarantine(
                {
                    "key": f"rejected:{rejected.channel}:{rejected.key}",
                    "kind": "rejected",
                    "channel": rejected.channel,
                    "reason": rejected.reason,
                    "detail": rejected.detail,
                    "source": rejected.source,
                    "raw_ref": rejected.raw_ref,
                    "payload": None,
                    "received_at": rejected.received_at,
                    "created_at": rejected.received_at,
                }
            )
        structlog.contextvars.bind_contextvars(outcome="quarantined", reason=rejected.reason)

    def carry_out(keys: "tuple[str, ...]", *, first_fails_message: bool) -> Counter[str]:
        """Carry out ``keys`` in order, each followed by the rows it created; what fails goes back alone.

        With one writer at a time (SQLite), consecutive rows that are work on the database alone (assignments; Slack
        rows where Slack is not configured) share a transaction: ``Effects.run_together``.
        """
        pending = list(reversed(keys))  # a stack: a key's follow-ups run next, before the keys after it
        counts: Counter[str] = Counter()
        deadline = time.monotonic() + services.settings.time_limit_seconds * EFFECTS_SHARE_OF_TIME_LIMIT
        first = True
        while pending:
            room = MAX_EFFECTS_PER_MESSAGE - sum(counts.values())
            if room <= 0 or time.monotonic() > deadline:
                # a chain without end, or a slow channel, must not hold a thread or run into the message's time limit
                enqueue_effects(broker, list(reversed(pending)))  # in the order they would have run here
                counts["queued"] += len(pending)
                break
            alone, first = first and first_fails_message, False
            size = min(room, len(pending), EFFECTS_TOGETHER) if services.effects.one_writer and not alone else 1
            group = [pending.pop() for _ in range(size)]
            try:
                results = services.effects.run_together(group) if size > 1 else []
                if not results:  # one key, or the first is not work on the database alone
                    results = [services.effects.run(group[0])]
            except GroupFailed as failed:
                # undone with the failed row: the keys before it go again (ahead of those after it), as they came
                pending.extend(reversed([*group[: failed.index], *group[failed.index + 1 :]]))
                failed_here(group[failed.index], failed.error, alone=False, counts=counts)
                continue
            except Exception as exc:
                pending.extend(reversed(group[1:]))
                failed_here(group[0], exc, alone=alone, counts=counts)
                continue
            pending.extend(reversed(group[len(results) :]))  # not reached: the row that stopped the group, and after it
            for result in reversed(results):  # each one's follow-ups next, the first one's first
                pending.extend(reversed(result.effects if result is not None else ()))
            counts.update(result.outcome if result is not None else "not_ours" for result in results)
        return counts

    def failed_here(key: str, exc: BaseException, *, alone: bool, counts: Counter[str]) -> None:
        """A row that failed: the message fails with it when it is the message's only key, or an outage; else it goes back alone."""
        if isinstance(exc, RetryLater):
            if alone:
                raise dramatiq.Retry(str(exc), delay=int(exc.retry_after * 1000)) from exc
            enqueue(broker, EFFECTS_QUEUE, EFFECT_ACTOR, key, delay_ms=int(exc.retry_after * 1000))
            counts["later"] += 1
            return
        if isinstance(exc, EffectRefused):  # run_together recorded it failed, with the reason
            counts["failed"] += 1
            return
        if alone or unavailable_component(exc) is not None:
            raise exc
        log.warning("effect failed; queued alone for its retries", effect=key, error=f"{type(exc).__name__}: {exc}"[:300])
        enqueue_effect(broker, key)
        counts["failed"] += 1

    def run_effect(key: str) -> None:
        structlog.contextvars.bind_contextvars(effect=key)
        counts = carry_out((key,), first_fails_message=True)
        structlog.contextvars.bind_contextvars(outcome="done" if counts["done"] else "skipped",
                                               **({"follow_ups": sum(counts.values()) - 1} if sum(counts.values()) > 1 else {}))

    def run_effects(*keys: str) -> None:
        counts = carry_out(keys, first_fails_message=False)
        structlog.contextvars.bind_contextvars(effects=len(keys), **{f"n_{k}": v for k, v in counts.items()})

    def handle_slack(kind: str, body: str) -> None:
        """An event or an action Slack sent (already verified and acknowledged by the web process)."""
        payload = json.loads(body)
        structlog.contextvars.bind_contextvars(slack=kind, event_id=payload.get("event_id") or payload.get("trigger_id"))
        handled = services.slack.handle(kind, payload)
        for key in handled.effects:
            enqueue_effect(broker, key)
        structlog.contextvars.bind_contextvars(outcome=handled.outcome)

    def run_job(name: str) -> None:
        counts = services.jobs.run(name, utcnow())
        structlog.contextvars.bind_contextvars(job=name, **{f"n_{k}": v for k, v in counts.items()})

    options = {"broker": broker, "queue_name": INTAKE_QUEUE, "throws": INVALID_INPUT}
    return {
        PROCESS_ACTOR: dramatiq.actor(outage_aware(process_inbound), actor_name=PROCESS_ACTOR, **options),
        PROCESS_BATCH_ACTOR: dramatiq.actor(outage_aware(process_batch), actor_name=PROCESS_BATCH_ACTOR, broker=broker,
                                            queue_name=INTAKE_QUEUE),
        REJECT_ACTOR: dramatiq.actor(outage_aware(record_rejected), actor_name=REJECT_ACTOR, **options),
        EFFECT_ACTOR: dramatiq.actor(outage_aware(run_effect), actor_name=EFFECT_ACTOR, broker=broker, queue_name=EFFECTS_QUEUE,
                                     throws=(EffectRefused,)),
        EFFECTS_BATCH_ACTOR: dramatiq.actor(outage_aware(run_effects), actor_name=EFFECTS_BATCH_ACTOR, broker=broker,
                                            queue_name=EFFECTS_QUEUE),
        SLACK_ACTOR: dramatiq.actor(outage_aware(handle_slack), actor_name=SLACK_ACTOR, broker=broker, queue_name=SLACK_QUEUE,
                                    throws=(json.JSONDecodeError, *INVALID_INPUT)),
        JOB_ACTOR: dramatiq.actor(outage_aware(run_job), actor_name=JOB_ACTOR, broker=broker, queue_name=SCHEDULED_QUEUE, max_retries=2),
    }
