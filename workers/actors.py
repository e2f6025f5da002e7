"""The actors, bound to a broker by ``register_actors`` (nothing is registered at import time).

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
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import dramatiq
import structlog
from dramatiq.middleware import CurrentMessage
from sqlalchemy import Engine
from sqlalchemy.exc import DataError

from classifiers.pipeline import EnquiryClassifier
from config.broker import redis_unavailable
from config.errors import ServiceUnavailable
from config.desk import DeskConfig, load_desk
from config.settings import Settings
from intake.base import Rejected
from intake.errors import MessageDecodeError
from intake.message import InboundMessage
from config.queues import (EFFECT_ACTOR, EFFECTS_QUEUE, INTAKE_QUEUE, JOB_ACTOR, PROCESS_ACTOR, QUEUES, REJECT_ACTOR, SCHEDULED_QUEUE,
                           SLACK_ACTOR, SLACK_QUEUE, enqueue_effect)
from intake.queue import InflightRegistry, QueueSink
from storage.db import is_unavailable as database_unavailable
from storage.intake_store import IntakeStore
from workers.intake.conversation import Threader, TicketKeys
from workers.desk.privacy import Privacy
from intake.archive import FileArchive
from config.secrets import desk_secret
from intake.state import ProcessedLog
from workers.intake.pipeline import Outcome, Pipeline
from workers.errors import EffectRefused, ParentInFlight, RetryLater
from workers.intake.routing import Router
from workers.intake.training import ModelStore, load_or_train
from workers.desk.operations import Desk, resume_on_enquirer_reply
from workers.outbound.effects import AcknowledgementPolicy, Effects
from workers.outbound.email_out import EmailSender
from workers.ops.health import Problem, desk_snapshot
from workers.desk.scheduled import Jobs
from workers.outbound.slack import SlackPoster, make_client
from workers.outbound.slack_handler import SlackHandler
from workers.ops.observability import observability
from storage.models import utcnow
from classifiers.model import TrainedModels

if TYPE_CHECKING:  # imported with the first index file: a desk without one never needs them
    from classifiers.docs.index import DocsIndex
    from classifiers.docs.suggestions import Signposting

INVALID_INPUT = (MessageDecodeError, DataError)
MAX_PARENT_WAIT_DELAY_MS = 5000


@dataclass
class Services:
    """Everything the actors need, built once per worker process."""

    settings: Settings
    desk: DeskConfig
    engine: Engine
    store: IntakeStore
    pipeline: Pipeline
    inflight: InflightRegistry
    models: "ModelWatcher"
    operations: Desk
    effects: Effects
    jobs: Jobs
    slack: SlackHandler


def slack_poster(settings: Settings) -> SlackPoster | None:
    if not settings.slack_bot_token:
        return None
    return SlackPoster(make_client(settings.slack_bot_token, settings.slack_api_url))


def build_services(settings: Settings, broker: dramatiq.Broker, engine: Engine) -> Services:
    desk = load_desk(settings)
    keys = TicketKeys(desk_secret(settings))  # reply addresses and subject tokens carry a key a guessed number lacks
    store = IntakeStore(engine)
    inflight = InflightRegistry(broker.client, settings.redis_namespace)
    models = ModelWatcher(ModelStore(settings.resolved_model_dir), desk, engine)
    operations = Desk(desk, settings.ticket_prefix)
    pipeline = Pipeline(
        store=store,
        classifier=EnquiryClassifier(desk, settings.triage_confidence, models.current),
        router=Router(desk.routing),
        threader=Threader(settings.ticket_prefix, desk.taxonomy.free_mail_domains, strangers=settings.thread_strangers, keys=keys),
        inflight=inflight,
        own_addresses=frozenset({settings.mail_from.lower()} if settings.mail_from else set()),
        own_message_id_domain=settings.resolved_message_id_domain,
        after_store=_processed_hook(settings, broker) if settings.imap_processed_action != "none" else None,
        on_enquirer_reply=resume_on_enquirer_reply(operations),
        signpost=DocsWatcher(settings.resolved_docs_index, settings.docs_gap_score).signpost,
    )
    models.on_change = lambda new: setattr(pipeline, "classifier", EnquiryClassifier(desk, settings.triage_confidence, new))
    poster = slack_poster(settings)
    policy = AcknowledgementPolicy(
        window=timedelta(hours=settings.acknowledgement_window_hours), per_address_hour=settings.ack_limit_per_address_hour,
        per_domain_hour=settings.ack_limit_per_domain_hour, global_hour=settings.ack_limit_global_hour,
        own_addresses=frozenset({settings.mail_from.lower()} if settings.mail_from else set()),
    )
    effects = Effects(engine, operations, poster, lease=timedelta(seconds=settings.effect_lease_seconds), acknowledge=settings.acknowledge,
                      acknowledgement_policy=policy)
    email = EmailSender.from_settings(engine, settings, desk.templates.desk_name, keys=keys)
    if email is not None:
        effects.senders["email"] = email
        effects.senders["web"] = email  # web enquiries are answered by e-mail, in the thread of their first message
    if settings.x.can_send:  # else XSender.from_settings gives None: tweepy and requests are not imported (50 ms)
        from workers.outbound.x_sender import XSender  # noqa: PLC0415

        x_sender = XSender.from_group(engine, settings.x)
        if x_sender is not None:
            effects.senders["x"] = x_sender
    def problems() -> list[Problem]:
        return desk_snapshot(settings, broker.client, engine, QUEUES).problems

    retention = None
    if settings.retention_days is not None:
        privacy = Privacy(engine, desk, FileArchive(settings.data_dir / "raw"), keys.secret, prefix=settings.ticket_prefix, surface="scheduler")
        retention = lambda now: privacy.expire(now, settings.retention_days)  # noqa: E731
    jobs = Jobs(engine, operations, lambda key: enqueue_effect(broker, key), health=problems, ops_channel=settings.ops_slack_channel,
                retention=retention)
    slack = SlackHandler(engine, operations, settings, poster, QueueSink(broker, inflight))
    return Services(settings, desk, engine, store, pipeline, inflight, models, operations, effects, jobs, slack)


def _processed_hook(settings: Settings, broker: dramatiq.Broker) -> Callable[[InboundMessage, "Outcome"], None]:
    """Tell the adapters which items are stored (the generic signal), so that the IMAP adapter may flag or move mail —
    never before the ticket exists."""
    processed = ProcessedLog(broker.client, settings.redis_namespace)

    def hook(message: InboundMessage, outcome: "Outcome") -> None:
        processed.record(message.source)

    return hook


class ModelWatcher:
    """Keeps the newest trained model: checks the store now and then, swaps in a newer version."""

    CHECK_SECONDS = 30.0

    def __init__(self, store: ModelStore, desk: DeskConfig, engine: Engine) -> None:
        self.store = store
        self.current = load_or_train(desk, store, engine)
        self.on_change: Callable[[TrainedModels], None] | None = None
        self._checked = time.monotonic()
        self._lock = threading.Lock()

    def refresh(self) -> None:
        if time.monotonic() - self._checked < self.CHECK_SECONDS or not self._lock.acquire(blocking=False):
            return
        try:
            self._checked = time.monotonic()
            newest_version = self.store.newest_version()
            if newest_version is not None and newest_version != self.current.version:
                newest = self.store.newest()
                if newest is not None and newest.version != self.current.version:
                    self.current = newest
                    if self.on_change is not None:
                        self.on_change(newest)
                    structlog.get_logger("helpdesk.worker").info("classifier model updated", version=newest.version)
        finally:
            self._lock.release()


class DocsWatcher:
    """The documentation index of `helpdesk docs index`, reloaded when the file changes; no index, no suggestions."""

    CHECK_SECONDS = 30.0

    def __init__(self, path: Path, gap_score: float = 0.0) -> None:
        self.path = path
        self.gap_score = gap_score
        self.index: "DocsIndex | None" = None
        self._stamp: float | None = None
        self._checked = time.monotonic()
        self._lock = threading.Lock()
        self._reload()  # before the first message: every ticket gets suggestions once an index exists

    def current(self) -> "DocsIndex | None":
        if time.monotonic() - self._checked >= self.CHECK_SECONDS and self._lock.acquire(blocking=False):
            try:
                self._checked = time.monotonic()
                self._reload()
            finally:
                self._lock.release()
        return self.index

    def _reload(self) -> None:
        try:
            stamp: float | None = self.path.stat().st_mtime
        except OSError:
            stamp = None
        if stamp != self._stamp:
            self._stamp = stamp
            self.index = self._load() if stamp is not None else None

    def _load(self) -> "DocsIndex | None":
        from classifiers.docs.errors import DocsIndexError  # noqa: PLC0415
        from workers.intake.docs_index import load_index  # noqa: PLC0415

        try:
            index = load_index(self.path, gap_score=self.gap_score or None)
        except DocsIndexError as exc:
            structlog.get_logger("helpdesk.worker").warning("documentation index unusable; no suggestions", error=str(exc))
            return None
        structlog.get_logger("helpdesk.worker").info("documentation index loaded", pages=len(index.pages), path=str(self.path))
        return index

    def signpost(self, text: str, language: str) -> "Signposting | None":
        index = self.current()
        return index.signpost(text, k=3, language=language) if index is not None else None


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

    def run_effect(key: str) -> None:
        structlog.contextvars.bind_contextvars(effect=key)
        try:
            result = services.effects.run(key)
        except RetryLater as exc:
            raise dramatiq.Retry(str(exc), delay=int(exc.retry_after * 1000)) from exc
        for follow_up in result.effects if result is not None else ():
            enqueue_effect(broker, follow_up)
        structlog.contextvars.bind_contextvars(outcome="done" if result is not None else "skipped")

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
        REJECT_ACTOR: dramatiq.actor(outage_aware(record_rejected), actor_name=REJECT_ACTOR, **options),
        EFFECT_ACTOR: dramatiq.actor(outage_aware(run_effect), actor_name=EFFECT_ACTOR, broker=broker, queue_name=EFFECTS_QUEUE,
                                     throws=(EffectRefused,)),
        SLACK_ACTOR: dramatiq.actor(outage_aware(handle_slack), actor_name=SLACK_ACTOR, broker=broker, queue_name=SLACK_QUEUE,
                                    throws=(json.JSONDecodeError, *INVALID_INPUT)),
        JOB_ACTOR: dramatiq.actor(outage_aware(run_job), actor_name=JOB_ACTOR, broker=broker, queue_name=SCHEDULED_QUEUE, max_retries=2),
    }
