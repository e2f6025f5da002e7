"""The wiring of one process: settings → broker, database engine, archive. Built lazily, closed once.

``wait_for_services`` lets a long-running process (worker, adapter, web) start
while Redis or the database is down: it waits, with bounded exponential
backoff, instead of exiting. ``reachability`` is the one-shot check of
``helpdesk status``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the heavy libraries are imported by the property that needs them: `helpdesk --help` needs none
    import redis
    from dramatiq.brokers.redis import RedisBroker
    from sqlalchemy import Engine

    from config.settings import Settings
    from intake.archive import FileArchive
    from intake.email_intake import EmailIngestor
    from intake.mime import Limits
    from intake.queue import InflightRegistry, QueueSink

class Runtime:
    def __init__(self, settings: "Settings") -> None:
        self.settings = settings

    @cached_property
    def redis_url(self) -> str:
        from config.broker import redis_url  # noqa: PLC0415

        return redis_url(self.settings)

    def start_redis_in_background(self) -> threading.Thread | None:
        """Resolve ``redis_url`` on a background thread: when the desk uses the embedded Redis, its server (0.1 s to
        boot, in a process of its own) starts while this thread goes on — importing the worker's code, say.
        ``redis_url`` then gives the same URL; if the start failed, it tries again and raises."""
        if self.settings.redis_url:
            return None  # an external server: nothing to start

        def resolve() -> None:
            with contextlib.suppress(Exception):  # raised again by the caller's own use of redis_url
                self.redis_url  # noqa: B018

        # Not a daemon: a process ending meanwhile waits for the server to be registered, so that it is shut down at exit.
        thread = threading.Thread(target=resolve, name="embedded-redis-start")
        thread.start()
        return thread

    @cached_property
    def redis(self) -> "redis.Redis":
        """The Redis client: the broker's once there is one, else a client of its own (reading needs no broker)."""
        if "broker" in self.__dict__:
            return self.broker.client
        from config.broker import redis_client  # noqa: PLC0415

        return redis_client(self.redis_url)

    @cached_property
    def broker(self) -> "RedisBroker":
        from config.broker import create_broker  # noqa: PLC0415

        return create_broker(self.settings, self.redis_url, client=self.__dict__.get("redis"))

    @cached_property
    def database(self) -> "Engine":
        """The engine, not yet migrated (creating it does not connect)."""
        from storage.db import create_db_engine  # noqa: PLC0415

        return create_db_engine(self.settings.resolved_database_url, pool_size=self.settings.worker_threads + 2)

    @cached_property
    def engine(self) -> "Engine":
        """The engine, migrated: Alembic is imported only when the database is not at the newest migration."""
        from storage.db import at_newest_migration  # noqa: PLC0415

        if not at_newest_migration(self.database):
            from storage import schema  # noqa: PLC0415

            schema.upgrade(self.database)
        return self.database

    @cached_property
    def archive(self) -> "FileArchive":
        from intake.archive import FileArchive  # noqa: PLC0415

        return FileArchive(self.settings.data_dir / "raw")

    @cached_property
    def inflight(self) -> "InflightRegistry":
        from intake.queue import InflightRegistry  # noqa: PLC0415

        return InflightRegistry(self.broker.client, self.settings.redis_namespace)

    @cached_property
    def sink(self) -> "QueueSink":
        from intake.queue import QueueSink  # noqa: PLC0415

        return QueueSink(self.broker, self.inflight)

    @cached_property
    def ingestor(self) -> "EmailIngestor":
        from intake.email_intake import EmailIngestor  # noqa: PLC0415
        from intake.parse_pool import PoolOptions  # noqa: PLC0415
        from intake.prescan import PrescanLimits  # noqa: PLC0415
        from intake.quoting import ReplySplitter  # noqa: PLC0415

        return EmailIngestor(self.sink, self.archive, self.limits, ReplySplitter(self.settings.languages),
                             prescan_limits=PrescanLimits.from_settings(self.settings), pool=PoolOptions.from_settings(self.settings))

    @property
    def limits(self) -> "Limits":
        from intake.mime import Limits  # noqa: PLC0415

        limits = self.settings.limits
        return Limits(max_raw_bytes=limits.max_raw_bytes, max_text_chars=limits.max_text_chars,
                      max_attachment_bytes=limits.max_attachment_bytes)

    def close(self) -> None:
        if "ingestor" in self.__dict__:
            self.ingestor.close()
        if "broker" in self.__dict__:
            from config.broker import close_broker  # noqa: PLC0415

            close_broker(self.broker)
        elif "redis" in self.__dict__:
            self.redis.close()
        if "database" in self.__dict__:
            self.database.dispose()

    def disconnect(self) -> None:
        """Close the open connections to Redis and the database, keeping everything else (the embedded Redis runs on):
        a process about to fork must not leave its children a socket they would share with it."""
        if "broker" in self.__dict__ or "redis" in self.__dict__:
            self.redis.connection_pool.disconnect()
        if "database" in self.__dict__:
            self.database.dispose()

    def reachability(self) -> dict[str, str]:
        """``{"redis": "ok" | error, "database": "ok" | error}``, each checked once, without waiting."""
        import redis  # noqa: PLC0415

        from storage.db import reachable  # noqa: PLC0415

        found: dict[str, str] = {}
        try:
            self.redis.ping()
            found["redis"] = "ok"
        except (redis.RedisError, OSError) as exc:
            found["redis"] = f"{type(exc).__name__}: {exc}"
        found["database"] = reachable(self.database) or "ok"
        return found

    def wait_for_services(self, stop: threading.Event, *, database: bool = True) -> bool:
        """Block until Redis (and the database, migrated) answer; bounded exponential backoff. False if stopped first."""
        import structlog  # noqa: PLC0415

        from config.broker import wait_for_redis  # noqa: PLC0415

        limit = self.settings.service_wait_max_seconds
        log = structlog.get_logger("helpdesk.runtime")

        def waiting(component: str) -> Callable[[str, float], None]:
            return lambda error, delay: log.warning(f"{component} unreachable; waiting", error=error[:300], retry_in=round(delay, 2))

        if not wait_for_redis(self.broker.client, stop, max_delay=limit, on_wait=waiting("redis")):
            return False
        if not database:  # an adapter that needs only Redis does not even import SQLAlchemy (≈ 0.3 s of its start)
            return not stop.is_set()
        from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415

        from storage.db import is_unavailable  # noqa: PLC0415

        delay = 0.25
        while not stop.is_set():
            try:
                self.engine  # noqa: B018 - connects and migrates
                return True
            except (SQLAlchemyError, OSError) as exc:
                if not is_unavailable(exc) and not isinstance(exc, OSError):
                    raise
                waiting("database")(f"{type(exc).__name__}: {exc}", delay)
            stop.wait(delay)
            delay = min(limit, delay * 2)
        return not stop.is_set()

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def prepare_worker(runtime: Runtime) -> None:
    """Add the worker-side middleware and register every actor on the runtime's broker."""
    from workers.actors import register_actors  # noqa: PLC0415 - workers are not needed to enqueue
    from workers.services import build_services  # noqa: PLC0415
    from dramatiq.middleware import Retries  # noqa: PLC0415

    from dramatiq.middleware import AgeLimit  # noqa: PLC0415

    from storage.db import ping  # noqa: PLC0415
    from workers.ops.middleware import DeadLetters, LogContext, Outages  # noqa: PLC0415
    from workers.ops.observability import Observability  # noqa: PLC0415

    runtime.broker.add_middleware(Observability(runtime.broker.client, runtime.settings.redis_namespace))
    services = build_services(runtime.settings, runtime.broker, runtime.engine)
    # dramatiq runs "after" hooks in reverse order: placed before Retries, these see its verdict
    # (retry or dead-letter) on a failed message.
    runtime.broker.add_middleware(LogContext(), before=Retries)
    runtime.broker.add_middleware(DeadLetters(services.store, services.inflight), before=Retries)
    # First of all: a thread waiting at the gate has not started its message (no time limit runs yet).
    probes = {"redis": runtime.broker.client.ping, "database": lambda: ping(runtime.engine)}
    runtime.broker.add_middleware(Outages(probes, max_delay=runtime.settings.service_wait_max_seconds), before=AgeLimit)
    register_actors(runtime.broker, services)
