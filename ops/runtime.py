"""The wiring of one process: settings → broker, database engine, archive. Built lazily, closed once."""

from __future__ import annotations

from functools import cached_property

from dramatiq.brokers.redis import RedisBroker
from sqlalchemy import Engine

from config.broker import close_broker, create_broker, redis_url
from config.settings import Settings
from intake.archive import FileArchive
from intake.email_intake import EmailIngestor
from intake.mime import Limits
from intake.quoting import ReplySplitter
from intake.queue import InflightRegistry, QueueSink
from storage import schema
from storage.db import create_db_engine


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def redis_url(self) -> str:
        return redis_url(self.settings)

    @cached_property
    def broker(self) -> RedisBroker:
        return create_broker(self.settings, self.redis_url)

    @cached_property
    def engine(self) -> Engine:
        engine = create_db_engine(self.settings.resolved_database_url, pool_size=self.settings.worker_threads + 2)
        schema.upgrade(engine)
        return engine

    @cached_property
    def archive(self) -> FileArchive:
        return FileArchive(self.settings.data_dir / "raw")

    @cached_property
    def inflight(self) -> InflightRegistry:
        return InflightRegistry(self.broker.client, self.settings.redis_namespace)

    @cached_property
    def sink(self) -> QueueSink:
        return QueueSink(self.broker, self.inflight)

    @cached_property
    def ingestor(self) -> EmailIngestor:
        return EmailIngestor(self.sink, self.archive, self.limits, ReplySplitter(self.settings.languages))

    @property
    def limits(self) -> Limits:
        s = self.settings
        return Limits(max_raw_bytes=s.max_raw_bytes, max_text_chars=s.max_text_chars, max_attachment_bytes=s.max_attachment_bytes)

    def close(self) -> None:
        if "broker" in self.__dict__:
            close_broker(self.broker)
        if "engine" in self.__dict__:
            self.engine.dispose()

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def prepare_worker(runtime: Runtime) -> None:
    """Add the worker-side middleware and register every actor on the runtime's broker."""
    from workers.actors import build_services, register_actors  # noqa: PLC0415 - workers are not needed to enqueue
    from dramatiq.middleware import Retries  # noqa: PLC0415

    from workers.middleware import DeadLetters, LogContext  # noqa: PLC0415

    services = build_services(runtime.settings, runtime.broker, runtime.engine)
    # dramatiq runs "after" hooks in reverse order: placed before Retries, these see its verdict
    # (retry or dead-letter) on a failed message.
    runtime.broker.add_middleware(LogContext(), before=Retries)
    runtime.broker.add_middleware(DeadLetters(services.store, services.inflight), before=Retries)
    register_actors(runtime.broker, services)
