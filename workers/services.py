"""The services a worker process runs on, built once from the settings: the pipeline, effects, jobs, Slack handling.

``build_services`` wires the desk's parts together (the classifier and its model watcher, the router, the
threader, the documentation index, the reply senders per channel, the scheduled jobs); the actors
(``workers.actors``) and the tests take what they need from the ``Services`` it returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import dramatiq
from sqlalchemy import Engine

from classifiers.pipeline import EnquiryClassifier
from config.desk import DeskConfig, load_desk
from config.settings import Settings
from intake.message import InboundMessage
from config.queues import QUEUES, enqueue_effect
from intake.queue import InflightRegistry, QueueSink
from storage.intake_store import IntakeStore
from workers.intake.conversation import Threader, TicketKeys
from workers.desk import public_holidays
from workers.desk.privacy import Privacy
from intake.archive import FileArchive
from config.secrets import desk_secret
from intake.state import ProcessedLog
from workers.intake.pipeline import Outcome, Pipeline
from workers.intake.routing import Router
from workers.intake.training import ModelStore
from workers.desk.operations import Desk, resume_on_enquirer_reply
from workers.outbound.effects import AcknowledgementPolicy, Effects
from workers.outbound.email_out import EmailSender
from workers.ops.health import Problem, desk_snapshot
from workers.desk.scheduled import Jobs
from workers.outbound.slack import SlackPoster, make_client
from workers.outbound.slack_handler import SlackHandler
from workers.intake.watchers import DocsWatcher, ModelWatcher



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
    public_holidays.keep_in(settings.public_holidays_file)
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
