"""Engines for SQLite and PostgreSQL: the same code, different URLs.

SQLite runs in WAL mode with a busy timeout; write transactions start with
``BEGIN IMMEDIATE`` so that concurrent writers queue on the lock instead of
failing with SQLITE_BUSY halfway through a read-then-write transaction.
Connections marked ``readonly`` begin deferred and do not block writers.
Threads of one process take turns at writing on a lock of the engine's own,
and processes on an ``flock`` of the file ``<database>-writer``, both held
from ``BEGIN IMMEDIATE`` to ``COMMIT`` or ``ROLLBACK``: a writer waiting for
them wakes the moment the writer before it is done, where SQLite's busy
handler would sleep in steps of up to 100 ms (a process of another program
still waits through the busy timeout).

``is_unavailable`` tells an unreachable database (refused, reset, shut down,
starting up) from a statement the database refused: the first is an outage to
wait out, the second a failure of the message.

``at_newest_migration`` says, without Alembic, whether a database needs
migrating at all: every command checks, and importing Alembic alone costs
about 0.1 s (``storage.schema`` migrates when the answer is no).
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from storage.models import declare_partial_indexes

SQLITE_BUSY_TIMEOUT_MS = 30_000
MIGRATION_VERSIONS = Path(__file__).resolve().parent / "migrations" / "versions"
# The two lines of a migration file that place it in the chain, as Alembic writes them.
_REVISION = re.compile(r"""^revision(?:\s*:\s*str)?\s*=\s*['"]([\w-]+)['"]\s*(?:#.*)?$""", re.MULTILINE)
_DOWN_REVISION = re.compile(r"""^down_revision(?:\s*:[^=]+)?\s*=\s*(None|['"]([\w-]+)['"])\s*(?:#.*)?$""", re.MULTILINE)


def normalise_url(url: str) -> str:
    """postgresql:// → postgresql+psycopg:// (psycopg 3 is the driver we ship)."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def create_db_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine for ``url``; the tables' partial indexes are declared for its dialect (see ``storage.models``)."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = _sqlite_engine(url, parsed.database)
    else:
        engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            pool_recycle=1800,
            connect_args={"connect_timeout": 10},
        )
    declare_partial_indexes(engine.dialect.name)
    return engine


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database server cannot be reached (not that it refused a statement)."""
    import psycopg  # noqa: PLC0415 - the PostgreSQL driver; SQLite files have no outages of this kind

    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig if exc.orig is not None else exc
    if isinstance(exc, psycopg.InterfaceError):
        return True  # the connection is gone
    if not isinstance(exc, psycopg.OperationalError):
        return False
    # No SQLSTATE: the connection failed or broke. 08: connection exception; 57P01-57P03: the server is
    # shutting down, crashed or starting up. Others (deadlock, serialization, cancel) are ordinary failures.
    state = exc.sqlstate
    return state is None or state.startswith("08") or state in {"57P01", "57P02", "57P03"}


def one_writer(engine: Engine) -> bool:
    """Whether the engine's writers take turns (SQLite: one write transaction at a time), so that fewer, larger write
    transactions pay; on PostgreSQL writers run side by side and small transactions hold fewer locks."""
    return engine.dialect.name == "sqlite"


def reading(engine: Engine) -> Connection:
    """A connection for reads only, to hand to the query functions of ``storage``: on SQLite it begins
    deferred (``BEGIN``, not ``BEGIN IMMEDIATE``) and so does not hold up writers."""
    return engine.connect().execution_options(readonly=True)


def ping(engine: Engine) -> None:
    """Raise if the database cannot be reached; returns quietly when it answers."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def reachable(engine: Engine) -> str | None:
    """None when the database answers, else what went wrong."""
    try:
        ping(engine)
    except (SQLAlchemyError, OSError) as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return None


def newest_migration(versions: Path = MIGRATION_VERSIONS) -> str | None:
    """The revision at the head of the migration files' single chain, read from their ``revision`` and
    ``down_revision`` lines; None when a file has not exactly one of each in Alembic's plain form (a merge's tuple,
    say) or the chain has not exactly one head — the caller then asks Alembic."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in versions.glob("*.py"):
        if path.name.startswith(("_", ".")):
            continue
        source = path.read_text(encoding="utf-8")
        revision, down = _REVISION.findall(source), _DOWN_REVISION.findall(source)
        if len(revision) != 1 or len(down) != 1:
            return None
        revisions.add(revision[0])
        if down[0][1]:
            parents.add(down[0][1])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 and parents <= revisions else None


def at_newest_migration(engine: Engine, versions: Path = MIGRATION_VERSIONS) -> bool:
    """Whether the database records exactly the newest migration (one ``SELECT`` on ``alembic_version``).

    False when in doubt — no such table yet, several rows, files ``newest_migration`` cannot read — so that
    ``storage.schema.upgrade`` decides; an unreachable database raises, as migrating it would.
    """
    newest = newest_migration(versions)
    if newest is None:
        return False
    try:
        with engine.connect() as connection:
            recorded = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except DBAPIError as exc:
        if is_unavailable(exc):
            raise
        return False  # a new database: no alembic_version table
    return recorded == [newest]


def _sqlite_engine(url: str, database: str | None) -> Engine:
    if database and database != ":memory:":
        path = Path(database)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # People's mail lives in this file: readable by the desk's user only (SQLite would create it 0644);
        # its -wal and -shm files take the database file's permissions.
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    writer = _Turns(Path(f"{database}-writer") if database and database != ":memory:" else None)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # straight to the driver: this runs for every transaction, and SQLAlchemy's execute path costs more than SQLite
        driver = connection.connection.driver_connection
        if connection.get_execution_options().get("readonly", False):
            driver.execute("BEGIN")
            return
        # A thread that already writes on another connection, or a lock never given back, must not hang here for
        # ever: after the busy timeout the thread goes on to SQLite's own waiting.
        held = writer.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
        try:
            driver.execute("BEGIN IMMEDIATE")
        except BaseException:
            if held:
                writer.release()
            raise
        if held:
            connection.info["sqlite_writer"] = writer

    def _end(connection: Any, statement: str) -> None:
        # SQLAlchemy calls these before it asks the driver to commit or roll back: end the transaction here, so that the
        # lock is given back only once the write is over (the driver's own commit then finds nothing to do)
        held = connection.info.pop("sqlite_writer", None)
        try:
            driver = connection.connection.driver_connection
            if driver.in_transaction:
                driver.execute(statement)
        finally:
            if held is not None:
                held.release()

    event.listen(engine, "commit", lambda connection: _end(connection, "COMMIT"))
    event.listen(engine, "rollback", lambda connection: _end(connection, "ROLLBACK"))

    def _given_back(record: Any) -> None:
        # a connection returned to the pool, or dropped, without its Connection ending the transaction
        held = record.info.pop("sqlite_writer", None) if record is not None else None
        if held is not None:
            held.release()

    # the events' exact signatures: any other makes SQLAlchemy wrap the listener and warn on every call
    @event.listens_for(engine.pool, "reset")
    def _on_reset(_dbapi_connection: Any, record: Any, _state: Any) -> None:
        _given_back(record)

    @event.listens_for(engine.pool, "invalidate")
    def _on_invalidate(_dbapi_connection: Any, record: Any, _exception: Any) -> None:
        _given_back(record)

    return engine


class _Turns:
    """Whose turn it is to write: the threads of this process take turns on a lock, then the processes on a file."""

    def __init__(self, across: Path | None) -> None:
        self._threads = threading.Lock()
        self._processes = _ProcessLock(across) if across is not None else None
        self._across = False  # whether the thread holding ``_threads`` holds the file lock too

    def acquire(self, timeout: float) -> bool:
        if not self._threads.acquire(timeout=timeout):
            return False
        try:
            self._across = self._processes is not None and self._processes.acquire()
        except BaseException:
            self._threads.release()
            raise
        return True

    def release(self) -> None:
        try:
            if self._across and self._processes is not None:
                self._across = False
                self._processes.release()
        finally:
            self._threads.release()


_writing = threading.local()  # the file locks this thread holds (by path), through any engine


class _ProcessLock:
    """An exclusive ``flock`` on a file beside the database: the writers of different processes take turns on it.

    It makes waiting cheaper, not writing safe: SQLite's own lock still keeps two writers apart, whoever forgets this
    one (another program, a process of an older release).

    A process waiting for it sleeps in the kernel and wakes the moment the holder lets go, where SQLite's busy handler
    would poll in sleeps of up to 100 ms (``bench/drain.py --processes 2``: 4.4–4.5 s, against 5.7–7.2 s on the busy
    handler alone and 4.8–5.0 s polling this lock every 2 ms). The kernel drops the lock of a process that dies,
    however it dies. The wait has no time limit: a holder alive but stuck holds SQLite's own write lock too, which
    no other writer gets past either. A thread that already holds it (writing through another engine on the same
    file) does not wait for itself: it goes on to SQLite's own waiting, as before. Opened once per process: a
    descriptor inherited through a fork shares its lock with the parent, so a child opens its own.
    """

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self._fd: int | None = None
        self._pid = 0
        self._holder: set[str] = set()

    def acquire(self) -> bool:
        held: set[str] = _writing.__dict__.setdefault("paths", set())
        if self.path in held:
            return False
        if self._pid != os.getpid():
            if self._fd is not None:
                os.close(self._fd)  # the parent's copy: closing it leaves the parent's lock alone
            self._fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
            self._pid = os.getpid()
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        held.add(self.path)
        self._holder = held  # released, perhaps by another thread (a connection dropped), from the holder's own set
        return True

    def release(self) -> None:
        self._holder.discard(self.path)
        if self._fd is not None and self._pid == os.getpid():
            fcntl.flock(self._fd, fcntl.LOCK_UN)
