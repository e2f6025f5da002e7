"""Outages: workers and adapters outlive Redis and the database, and the counts stay exact.

The servers these tests stop and start are private: a ``redis-server`` with append-only
persistence on a free port in a temp dir, and a PostgreSQL cluster (``initdb`` into a temp dir,
run as the ``postgres`` OS user, its socket in that dir, a free port). Every server a test
starts is stopped afterwards, whatever happened. The ``helpdesk`` commands run as subprocesses
configured by ``HELPDESK_*`` variables, their output in log files of the test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import dramatiq
import pytest
import redis
from sqlalchemy import Engine, create_engine, func, select, text

from config.settings import Settings
from intake.queue import InflightRegistry, QueueSink
from storage.intake_store import EVENT, MESSAGE, QUARANTINE, TICKET
from tests.cli import HELPDESK, cli_env
from tests.factories import make_email, make_message
from tests.servers.base import free_port
from workers.services import build_services
from workers.intake.pipeline import Pipeline

PG_BIN = Path("/usr/lib/postgresql/15/bin")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
QUEUES = ("intake", "effects", "scheduled", "slack")


def wait_for(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception:  # noqa: BLE001 - a server still starting refuses connections
            pass
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


# -- private servers --------------------------------------------------------------------------------
class PrivateRedis:
    """redis-server (AOF, everysec) on a free port with a dir of its own; stoppable and restartable in place."""

    def __init__(self, folder: Path) -> None:
        self.dir = folder
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        with open(self.dir / "redis.out", "ab") as out:
            self.process = subprocess.Popen(
                [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir), "--appendonly", "yes",
                 "--appendfsync", "everysec", "--save", "", "--daemonize", "no", "--protected-mode", "no"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        client = redis.Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1)
        try:
            wait_for(lambda: client.ping() and client.info("persistence").get("loading") == 0, 30, "redis-server")
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


class PrivatePostgres:
    """A cluster of its own: initdb into a temp dir owned by ``postgres``, a free port, its socket in the dir."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="hdtest-pg-"))
        self.data, self.sock, self.log = self.root / "data", self.root / "sock", self.root / "postgres.log"
        self.port = free_port()
        self.sock.mkdir()
        for path in (self.root, self.sock):
            shutil.chown(path, "postgres", "postgres")
        self.root.chmod(0o755)

    def _run(self, *args: str) -> None:
        with open(self.root / "tools.log", "ab") as out:
            done = subprocess.run(["runuser", "-u", "postgres", "--", *args], stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=subprocess.STDOUT, timeout=90)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} exited {done.returncode}: {(self.root / 'tools.log').read_text()[-2000:]}")

    def init(self) -> None:
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "--locale=C")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def create_database(self) -> str:
        name = f"hd_{uuid.uuid4().hex[:10]}"
        admin = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres", isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as c:
                c.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        if self.running:
            try:
                self.stop("immediate")
            except Exception:  # noqa: BLE001 - fall back to the signal
                try:
                    os.kill(int((self.data / "postmaster.pid").read_text().split()[0]), signal.SIGKILL)
                except (OSError, ValueError, IndexError):
                    pass
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivatePostgres]:
    if subprocess.run(["id", "postgres"], capture_output=True).returncode != 0 or not (PG_BIN / "initdb").exists():
        pytest.fail("a private PostgreSQL cluster needs the postgres OS user and PostgreSQL 15's binaries", pytrace=False)
    cluster = PrivatePostgres()
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.close()


# -- helpdesk processes -----------------------------------------------------------------------------
class Desk:
    """`helpdesk` commands sharing one configuration; long-running ones are stopped at the end."""

    def __init__(self, folder: Path, **settings: object) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.env = cli_env(data_dir=folder / "data", log_level="INFO", **settings)
        self.processes: list[tuple[subprocess.Popen, Path]] = []

    def start(self, *args: str) -> subprocess.Popen:
        log = self.folder / f"{args[0]}-{len(self.processes)}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen([*HELPDESK, *args], env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        self.processes.append((process, log))
        return process

    def log(self, process: subprocess.Popen) -> str:
        return next(log for p, log in self.processes if p is process).read_text(errors="replace")

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([*HELPDESK, *args], env=self.env, capture_output=True, text=True, timeout=timeout)

    def status(self) -> tuple[int, dict]:
        done = self.run("status", "--json")
        assert done.stdout.strip(), f"status printed nothing (exit {done.returncode}): {done.stderr[-2000:]}"
        return done.returncode, json.loads(done.stdout)

    def close(self) -> None:
        for process, _ in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)


@pytest.fixture
def desks() -> Iterator[Callable[..., Desk]]:
    made: list[Desk] = []

    def make(folder: Path, **settings: object) -> Desk:
        made.append(Desk(folder, **settings))
        return made[-1]

    yield make
    for desk in made:
        desk.close()


def write_mails(folder: Path, count: int, tag: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        raw = make_email(sender=f"Person {i} <person{i}@{tag}.example.org>", message_id=f"<{tag}-{i}@example.org>",
                         subject=f"Question {i} about publishing our contracts", body=f"Hello, question number {i}: how do we publish?")
        (folder / f"{tag}-{i:04d}.eml").write_bytes(raw)
    return folder


def stats(client: redis.Redis, namespace: str, field: str) -> float:
    """The workers' own counter ``field`` (processed, failed …), summed over queues and minutes."""
    return sum(float(client.hget(key, field) or 0) for key in client.scan_iter(match=f"{namespace}:stats:*"))


def inflight_keys(client: redis.Redis, namespace: str) -> int:
    return sum(1 for _ in client.scan_iter(match=f"{namespace}:inflight:*"))


def dead_letters(client: redis.Redis, namespace: str) -> int:
    return sum(client.zcard(f"{namespace}:{q}.XQ") for q in QUEUES)


def unfinished(client: redis.Redis, namespace: str) -> int:
    return sum(client.hlen(f"{namespace}:{q}.msgs") + client.hlen(f"{namespace}:{q}.DQ.msgs") for q in QUEUES)


def stored(engine: Engine) -> int:
    with engine.connect() as c:
        return c.execute(select(func.count()).select_from(MESSAGE).where(MESSAGE.c.direction == "in")).scalar_one()


# -- the worker and Redis -----------------------------------------------------------------------------
def test_worker_started_while_redis_is_down_waits_then_processes(tmp_path: Path, private_redis: PrivateRedis, model_dir: Path,
                                                               desks: Callable[..., Desk]) -> None:
    # Given Redis is down
    database = f"sqlite:///{tmp_path / 'helpdesk.db'}"
    desk = desks(tmp_path / "desk", redis_url=private_redis.url, redis_namespace="hd", database_url=database, model_dir=model_dir,
                 worker_threads=2, service_wait_max_seconds=1)
    code, data = desk.status()
    assert code == 2
    assert data["status"] == "unreachable"
    assert data["components"] == {"redis": "unreachable", "database": "ok"}
    assert "redis" in data["errors"]

    # When a worker starts, it waits instead of exiting
    worker = desk.start("worker", "--threads", "2")
    wait_for(lambda: "redis unreachable; waiting" in desk.log(worker) or worker.poll() is not None, 60, "the worker to wait")
    time.sleep(2)
    assert worker.poll() is None, desk.log(worker)

    # Then, once Redis is there, it processes what arrives
    private_redis.start()
    assert desk.run("import", str(write_mails(tmp_path / "mails", 5, "first"))).returncode == 0
    engine = create_engine(database)
    client = redis.Redis.from_url(private_redis.url)
    try:
        wait_for(lambda: stored(engine) == 5, 60, "the first five messages stored")

        # And a Redis outage while it runs pauses it; it carries on afterwards
        private_redis.stop()
        code, data = desk.status()
        assert code == 2
        assert data["components"]["redis"] == "unreachable"
        time.sleep(3)
        assert worker.poll() is None, desk.log(worker)
        private_redis.start()
        assert desk.run("import", str(write_mails(tmp_path / "more", 5, "second"))).returncode == 0
        wait_for(lambda: stored(engine) == 10, 60, "the next five messages stored")
        wait_for(lambda: unfinished(client, "hd") == 0, 30, "the queues to drain")
        assert inflight_keys(client, "hd") == 0
        assert dead_letters(client, "hd") == 0
        assert worker.poll() is None
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0, desk.log(worker)
    finally:
        client.close()
        engine.dispose()


# -- the worker and the database ------------------------------------------------------------------------
def test_a_database_outage_pauses_the_worker_without_a_retry_storm(tmp_path: Path, private_redis: PrivateRedis, private_pg: PrivatePostgres,
                                                                   model_dir: Path, desks: Callable[..., Desk]) -> None:
    # Given a worker running on PostgreSQL
    private_redis.start()
    database = private_pg.create_database()
    desk = desks(tmp_path / "desk", redis_url=private_redis.url, redis_namespace="hd", database_url=database, model_dir=model_dir,
                 worker_threads=4, service_wait_max_seconds=2, max_retries=3, min_backoff_ms=50, max_backoff_ms=500)
    client = redis.Redis.from_url(private_redis.url)
    engine = create_engine(database)
    worker = desk.start("worker", "--threads", "4")
    try:
        wait_for(lambda: any(client.scan_iter(match="hd:workers:*")), 60, "the worker to start")

        # When the database goes away for ~15 s while 60 enquiries arrive
        private_pg.stop()
        outage_started = time.monotonic()
        assert desk.run("import", str(write_mails(tmp_path / "mails", 60, "outage"))).returncode == 0
        code, data = desk.status()
        assert code == 2
        assert data["status"] == "unreachable"
        assert data["components"] == {"redis": "ok", "database": "unreachable"}
        assert [q["queue"] for q in data["queues"]] == list(QUEUES)  # what Redis can still tell
        time.sleep(max(0.0, 15 - (time.monotonic() - outage_started)))
        failed_in_outage = stats(client, "hd", "failed")
        print(f"failed attempts during a 15 s database outage: {failed_in_outage:g}")

        # Then the worker tried a few times, not thousands, and dead-lettered nothing
        assert 1 <= failed_in_outage < 50, f"{failed_in_outage} failed attempts during a 15 s outage"
        assert dead_letters(client, "hd") == 0
        assert worker.poll() is None, desk.log(worker)
        assert "service unreachable: pausing this worker" in desk.log(worker)

        # And once the database is back every message is stored once, nothing quarantined, no marks left
        private_pg.start()
        wait_for(lambda: stored(engine) == 60, 60, "every message stored after the outage")
        wait_for(lambda: unfinished(client, "hd") == 0, 30, "the queues to drain")
        with engine.connect() as c:
            assert c.execute(select(func.count(func.distinct(MESSAGE.c.external_id)))).scalar_one() == 60
            assert c.execute(select(func.count()).select_from(TICKET)).scalar_one() == 60
            assert c.execute(select(func.count()).select_from(QUARANTINE)).scalar_one() == 0
            assert c.execute(select(func.count()).select_from(EVENT).where(EVENT.c.kind == "duplicate")).scalar_one() == 0
        assert dead_letters(client, "hd") == 0
        assert inflight_keys(client, "hd") == 0
        assert stats(client, "hd", "failed") < 50
        code, data = desk.status()
        assert code in (0, 1)
        assert data["components"] == {"redis": "ok", "database": "ok"}
    finally:
        if not private_pg.running:
            private_pg.start()
        desk.close()
        client.close()
        engine.dispose()


def test_a_worker_started_while_the_database_is_down_waits(tmp_path: Path, private_redis: PrivateRedis, private_pg: PrivatePostgres,
                                                          model_dir: Path, desks: Callable[..., Desk]) -> None:
    private_redis.start()
    database = private_pg.create_database()
    desk = desks(tmp_path / "desk", redis_url=private_redis.url, redis_namespace="hd", database_url=database, model_dir=model_dir,
                 worker_threads=2, service_wait_max_seconds=1)
    engine = create_engine(database)
    private_pg.stop()
    try:
        worker = desk.start("worker", "--threads", "2")
        assert desk.run("import", str(write_mails(tmp_path / "mails", 3, "early"))).returncode == 0
        wait_for(lambda: "database unreachable; waiting" in desk.log(worker) or worker.poll() is not None, 60, "the worker to wait")
        time.sleep(2)
        assert worker.poll() is None, desk.log(worker)
        private_pg.start()
        wait_for(lambda: stored(engine) == 3, 60, "the messages stored once the database is up")
    finally:
        if not private_pg.running:
            private_pg.start()
        desk.close()
        engine.dispose()


# -- adapters -------------------------------------------------------------------------------------------
def test_the_imap_adapter_started_while_redis_is_down_waits_then_reads(tmp_path: Path, private_redis: PrivateRedis, dovecot, mailbox,
                                                                      model_dir: Path, desks: Callable[..., Desk]) -> None:  # noqa: ANN001
    from intake.state import RedisCheckpointStore  # noqa: PLC0415
    from tests.intake.imap_helpers import append  # noqa: PLC0415

    user, password = mailbox
    append(dovecot, mailbox, [make_email(message_id=f"<w{i}@x.org>", subject=f"Waiting {i}") for i in range(3)])
    desk = desks(tmp_path / "desk", redis_url=private_redis.url, redis_namespace="hd", database_url=f"sqlite:///{tmp_path / 'h.db'}",
                 model_dir=model_dir, service_wait_max_seconds=1, imap_host="127.0.0.1", imap_port=dovecot.port, imap_user=user,
                 imap_password=password, imap_ssl="false")
    adapter = desk.start("intake", "imap")
    wait_for(lambda: "redis unreachable; waiting" in desk.log(adapter) or adapter.poll() is not None, 60, "the adapter to wait")
    time.sleep(2)
    assert adapter.poll() is None, desk.log(adapter)
    private_redis.start()
    client = redis.Redis.from_url(private_redis.url)
    try:
        checkpoints = RedisCheckpointStore(client, "hd")
        wait_for(lambda: (c := checkpoints.get("imap", f"{user}@127.0.0.1", "INBOX")) is not None and c.last_uid == 3, 60,
                 "the adapter to read the mailbox")
        queued = [dramatiq.Message.decode(raw) for raw in client.hvals("hd:intake.msgs")]
        assert sum(len(message.args) for message in queued) == 3  # read together: one batch, a message per argument
    finally:
        client.close()


# -- counts agree ------------------------------------------------------------------------------------------
@pytest.fixture
def pipeline(settings: Settings, broker, engine: Engine) -> Pipeline:  # noqa: ANN001
    return build_services(settings, broker, engine).pipeline


def _duplicates(engine: Engine) -> int:
    with engine.connect() as c:
        return c.execute(select(func.count()).select_from(EVENT).where(EVENT.c.kind == "duplicate")).scalar_one()


def _item(uid: int, **fields: object):  # noqa: ANN202 - an InboundMessage read from mailbox item ``uid``
    return make_message(**fields).model_copy(update={"source": f"imap:desk@example.org/INBOX;uidvalidity=7;uid={uid}"})


def test_an_overlap_re_read_is_not_a_duplicate(pipeline: Pipeline, engine: Engine) -> None:
    # Given an enquiry (UID 1) and an exact copy of it appended again (UID 2): one duplicate
    assert pipeline.process(_item(1), "d1").kind == "created"
    assert pipeline.process(_item(2), "d2").kind == "duplicate"
    # When the adapter restarts and re-reads its overlap window: both items again, as new deliveries
    assert pipeline.process(_item(2), "d3").kind == "redelivered"
    assert pipeline.process(_item(1), "d4").kind == "redelivered"
    # Then the copy is still counted once
    assert _duplicates(engine) == 1


def test_a_copy_read_again_while_its_first_read_is_in_flight_counts_once(pipeline: Pipeline, engine: Engine) -> None:
    pipeline.process(_item(1), "d1")
    # the copy's first read and its re-read are processed at the same moment by different workers
    outcomes: list[str] = []
    threads = [threading.Thread(target=lambda d=d: outcomes.append(pipeline.process(_item(2), d).kind)) for d in ("d2", "d3", "d4")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(outcomes) == ["duplicate", "redelivered", "redelivered"]
    assert _duplicates(engine) == 1


def test_in_flight_marks_are_cleared_once_stored_whatever_the_outcome(settings: Settings, broker, engine: Engine) -> None:  # noqa: ANN001
    services = build_services(settings, broker, engine)
    inflight = InflightRegistry(broker.client, settings.redis_namespace)
    enquiry = _item(1)
    reply = _item(2, external_id="r1@hacienda.gob.mx", text="Thanks, and another thing.", in_reply_to=("m1@hacienda.gob.mx",))
    copy = _item(3)
    automated = _item(4, external_id="ooo@hacienda.gob.mx", subject="Out of office", signals={"auto-submitted": "auto-replied"})
    messages = [enquiry, reply, copy, automated]
    for m in messages:
        inflight.mark(m.channel, {m.external_id, *([m.thread.message_id] if m.thread.message_id else [])})
    assert inflight_keys(broker.client, settings.redis_namespace) > 0
    kinds = [services.pipeline.process(m, f"d{i}").kind for i, m in enumerate(messages)]
    assert kinds == ["created", "threaded", "duplicate", "automated"]
    assert inflight_keys(broker.client, settings.redis_namespace) == 0


def test_the_queue_sink_marks_and_the_worker_clears(settings: Settings, broker, engine: Engine, running_worker) -> None:  # noqa: ANN001
    sink = QueueSink(broker, InflightRegistry(broker.client, settings.redis_namespace))
    for i in range(10):
        sink.put(make_message(f"q{i}@x.org", sender=f"p{i}@x.org", subject=f"Question {i}"))
    sink.put(make_message("q0@x.org", sender="p0@x.org", subject="Question 0"))  # the same item again
    with running_worker(engine):
        wait_for(lambda: unfinished(broker.client, settings.redis_namespace) == 0, 60, "the queue to drain")
    assert stored(engine) == 10
    assert inflight_keys(broker.client, settings.redis_namespace) == 0
