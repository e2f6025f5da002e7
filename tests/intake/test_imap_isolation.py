"""One bad mail, a crashing watcher, a dead adapter: the IMAP adapter goes on, and health tells — real Dovecot, Redis, worker, database."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from imapclient import IMAPClient
from sqlalchemy import Engine, select

from intake.base import Sink
from intake.email_intake import EmailIngestor
from intake.errors import SinkError
from intake.imap import FolderWatcher, ImapAccount, ImapAdapter, WatchOptions, connect
from intake.state import AdapterHealth, Checkpoint, RedisCheckpointStore
from intake.supervision import Backoff
from storage.intake_store import QUARANTINE
from tests.cli import cli_env, start_cli
from tests.factories import make_email
from tests.intake.imap_helpers import account_for, append, ingestor_for, tickets, wait_for
from config.queues import QUEUES
from workers.ops.health import snapshot

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]
MARKER = b"Subject: RECURSE-ME"


class ExplodingIngestor(EmailIngestor):
    """The real ingestor, except that a batch holding a mail with the marker subject makes it raise what no parser
    should (``ingest`` is ``ingest_many`` of one item: the mail raises alone too)."""

    def ingest_many(self, items: Sequence[tuple[bytes, str]]) -> list[bool]:
        if any(MARKER in raw for raw, _ in items):
            raise RecursionError("maximum recursion depth exceeded while parsing")
        return super().ingest_many(items)


class RecordingCheckpoints(RedisCheckpointStore):
    """The Redis checkpoint store, remembering every value it was given (to see it advance per batch)."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.history: list[int] = []

    def set(self, adapter: str, account: str, folder: str, checkpoint: Checkpoint) -> None:
        super().set(adapter, account, folder, checkpoint)
        self.history.append(checkpoint.last_uid)


class CountingClient(IMAPClient):
    """A real IMAP client that counts the FETCHes of message bodies it sends."""

    body_fetches: list[list[int]]

    def fetch(self, messages, data, modifiers=None):  # noqa: ANN001, ANN201
        if any("BODY" in str(item) for item in data):
            self.body_fetches.append(list(messages))
        return super().fetch(messages, data, modifiers)


def _counting_connect(account: ImapAccount, fetches: list[list[int]]) -> IMAPClient:
    client = CountingClient(account.host, port=account.port, ssl=False, timeout=account.timeout)
    client.body_fetches = fetches
    client.login(account.user, account.password or "")
    return client


def _watcher(account: ImapAccount, ingestor: EmailIngestor, settings, broker, stop: threading.Event,  # noqa: ANN001
             connector=connect, checkpoints: RedisCheckpointStore | None = None, **options) -> FolderWatcher:  # noqa: ANN001, ANN003
    client, ns = broker.client, settings.redis_namespace
    return FolderWatcher(account, "INBOX", ingestor, checkpoints or RedisCheckpointStore(client, ns), AdapterHealth(client, ns),
                         WatchOptions(**{"backoff_min": 0.1, "backoff_max": 0.5, "poll_seconds": 0.5, "idle": False,
                                         "restart": Backoff(0.1, 0.5), "heartbeat_seconds": 0.2, **options}),
                         stop, connector=connector)


@contextmanager
def _adapter(*watchers: FolderWatcher) -> Iterator[threading.Event]:
    """The IMAP adapter (supervised watchers, heartbeats) on a thread; stopped afterwards."""
    stop = watchers[0].stop
    thread = threading.Thread(target=ImapAdapter(list(watchers)).run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(timeout=20)


def _checkpoint(settings, broker, account: ImapAccount) -> int:  # noqa: ANN001
    found = RedisCheckpointStore(broker.client, settings.redis_namespace).get("imap", account.name, "INBOX")
    return found.last_uid if found else 0


def _quarantined(engine: Engine) -> list:
    with engine.connect() as c:
        return c.execute(select(QUARANTINE)).all()


def _health(settings, broker, account: ImapAccount) -> dict[str, str]:  # noqa: ANN001
    return AdapterHealth(broker.client, settings.redis_namespace).read_all().get(f"imap:{account.name}/INBOX", {})


def test_a_mail_that_crashes_ingestion_is_quarantined_and_the_rest_is_read(dovecot, mailbox, settings, broker, engine: Engine,  # noqa: ANN001
                                                                           running_worker) -> None:
    # Given an ordinary mail, then one whose ingestion raises RecursionError, then two more ordinary ones
    append(dovecot, mailbox, [make_email(message_id="<before@x.org>", subject="First question"),
                              make_email(message_id="<bomb@x.org>", subject="RECURSE-ME"),
                              make_email(message_id="<after1@x.org>", subject="Second question"),
                              make_email(message_id="<after2@x.org>", subject="Third question")])
    account = account_for(dovecot, mailbox)
    real = ingestor_for(settings, broker)
    ingestor = ExplodingIngestor(real.sink, real.archive, real.limits, real.splitter, parser=real.parser)
    # When the adapter reads the folder
    with running_worker(engine), _adapter(_watcher(account, ingestor, settings, broker, threading.Event())):
        wait_for(lambda: _checkpoint(settings, broker, account) == 4, timeout=30)
        wait_for(lambda: tickets(engine) == 3, timeout=30)
        wait_for(lambda: len(_quarantined(engine)) == 1, timeout=15)
        [row] = _quarantined(engine)
        health = _health(settings, broker, account)
    # Then the bad one is quarantined with the reason, the exception and its raw bytes; the later ones are tickets
    assert (row.kind, row.reason, row.channel) == ("rejected", "adapter_error", "email")
    assert row.detail.startswith("RecursionError: maximum recursion depth")
    assert 'File "' in row.detail  # and where it was raised
    assert row.source.endswith(";uid=2")
    assert row.raw_ref
    assert MARKER in real.archive.get(row.raw_ref)
    # and the watcher never died: no restart, the checkpoint is past every mail
    assert "restarts" not in health
    assert _checkpoint(settings, broker, account) == 4
    ingestor.close()


def test_bodies_are_fetched_in_batches_bounded_by_bytes(dovecot, mailbox, settings, broker) -> None:  # noqa: ANN001
    # Given five mails of about 2 MB each
    line = "All work and no play makes the data review tool a dull tool. " * 1 + "\n"
    body = line * (2 * 1024 * 1024 // len(line))
    append(dovecot, mailbox, [make_email(message_id=f"<big{i}@x.org>", subject=f"Big {i}", body=body) for i in range(5)])
    account = account_for(dovecot, mailbox)
    fetches: list[list[int]] = []
    checkpoints = RecordingCheckpoints(broker.client, settings.redis_namespace)
    ingestor = ingestor_for(settings, broker)
    watcher = _watcher(account, ingestor, settings, broker, threading.Event(), checkpoints=checkpoints,
                       batch_size=100, batch_bytes=5 * 1024 * 1024)
    # When it syncs with at most 5 MB per FETCH (and then with less than one message's size)
    client = _counting_connect(account, fetches)
    try:
        assert watcher.sync(client) == 5
    finally:
        client.logout()
    # Then two messages go per FETCH, and the checkpoint advances after each batch
    assert fetches == [[1, 2], [3, 4], [5]]
    assert checkpoints.history[:3] == [2, 4, 5]  # (a first sync also records the folder once more at its end)
    # and a message larger than the byte bound is fetched alone
    fetches.clear()
    RedisCheckpointStore(broker.client, settings.redis_namespace).set("imap", account.name, "INBOX", Checkpoint(
        checkpoints.get("imap", account.name, "INBOX").uidvalidity, 0))
    small = _watcher(account, ingestor, settings, broker, threading.Event(), batch_bytes=1024 * 1024)
    client = _counting_connect(account, fetches)
    try:
        assert small.sync(client) == 5
    finally:
        client.logout()
    assert fetches == [[1], [2], [3], [4], [5]]
    ingestor.close()


def test_a_crashed_watcher_is_restarted_counted_and_shown(dovecot, mailbox, settings, broker, engine: Engine) -> None:  # noqa: ANN001
    # Given a connector that fails once with an error that is not a network error
    calls = []

    def flaky_connect(account: ImapAccount) -> IMAPClient:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("a bug nobody foresaw")
        return connect(account)

    append(dovecot, mailbox, [make_email(message_id="<crash@x.org>")])
    account = account_for(dovecot, mailbox)
    ingestor = ingestor_for(settings, broker)
    watcher = _watcher(account, ingestor, settings, broker, threading.Event(), connector=flaky_connect)
    # When the adapter runs
    with _adapter(watcher):
        wait_for(lambda: _checkpoint(settings, broker, account) == 1, timeout=30)
        health = _health(settings, broker, account)
        snap = snapshot(broker.client, settings.redis_namespace, engine, QUEUES, 60_000)
    # Then the watcher was restarted once, and health records and reports it
    assert health["restarts"] == "1"
    assert health["last_crash"].startswith("RuntimeError: a bug nobody foresaw")
    assert float(health["running"]) > time.time() - 5
    [problem] = [p for p in snap.problems if p.subject == f"imap:{account.name}/INBOX"]
    assert (problem.condition, problem.severity) == ("adapter_restarted", "warning")
    assert "1 restart(s)" in problem.detail
    # and a clean stop is recorded as such: not "down"
    stopped = snapshot(broker.client, settings.redis_namespace, engine, QUEUES, 60_000, adapter_down=0.01, now=time.time() + 5)
    assert not [p for p in stopped.problems if p.condition == "adapter_down"]
    ingestor.close()


class _QueueDown(Sink):
    def put(self, message) -> None:  # noqa: ANN001
        raise SinkError("redis went away")

    def reject(self, rejected) -> None:  # noqa: ANN001
        raise SinkError("redis went away")


def test_mail_waiting_above_a_checkpoint_that_does_not_move_is_unhealthy(dovecot, mailbox, settings, broker, engine: Engine) -> None:  # noqa: ANN001
    # Given mail in the folder and a queue that refuses everything (a transport failure: retried, never skipped)
    append(dovecot, mailbox, [make_email(message_id=f"<w{i}@x.org>", subject=f"Waiting {i}") for i in range(2)])
    account = account_for(dovecot, mailbox)
    real = ingestor_for(settings, broker)
    ingestor = EmailIngestor(_QueueDown(), real.archive, real.limits, real.splitter, parser=real.parser)
    with _adapter(_watcher(account, ingestor, settings, broker, threading.Event())):
        wait_for(lambda: _health(settings, broker, account).get("highest_uid") == "2", timeout=30)
        time.sleep(1.5)
        snap = snapshot(broker.client, settings.redis_namespace, engine, QUEUES, 60_000, adapter_silent=1.0)
    # Then nothing was skipped, and health says that mail waits
    assert _checkpoint(settings, broker, account) == 0
    stuck = [p for p in snap.problems if p.condition == "adapter_stuck"]
    assert len(stuck) == 1
    assert stuck[0].severity == "unhealthy"
    assert "2 message(s) above the checkpoint" in stuck[0].detail
    ingestor.close()


def test_a_killed_adapter_is_reported_not_running_by_status(dovecot, mailbox, tmp_path: Path, redis_url: str, namespace: str,  # noqa: ANN001
                                                            database_url: str, model_dir: Path) -> None:
    # Given `helpdesk intake imap` running, heartbeating every half second
    user, password = mailbox
    append(dovecot, mailbox, [make_email(message_id="<alive@x.org>")])
    env = cli_env(data_dir=tmp_path / "data", redis_url=redis_url, redis_namespace=namespace, database_url=database_url,
                  model_dir=model_dir, log_level="WARNING", imap_host="127.0.0.1", imap_port=dovecot.port, imap_user=user,
                  imap_password=password, imap_ssl="false", adapter_heartbeat_seconds=0.5, alert_adapter_down_seconds=2)
    import redis

    client = redis.Redis.from_url(redis_url)
    health = AdapterHealth(client, namespace)
    name = f"imap:{user}@127.0.0.1/INBOX"
    adapter = start_cli(["intake", "imap"], env)
    try:
        wait_for(lambda: "running" in health.read_all().get(name, {}), timeout=60)
        running = _status(env)
        assert not [p for p in running["problems"] if p["subject"] == name]
        # When it is killed (no clean stop)
        adapter.send_signal(signal.SIGKILL)
        adapter.wait(timeout=10)
    finally:
        if adapter.poll() is None:
            adapter.kill()
    time.sleep(2.5)
    # Then `helpdesk status --json` reports it not running, and fails
    result = subprocess.run([sys.executable, "-m", "ops", "status", "--json"], env=env, capture_output=True, text=True, timeout=120)
    data = json.loads(result.stdout)
    down = [p for p in data["problems"] if p["condition"] == "adapter_down"]
    assert result.returncode == 1
    assert data["status"] == "unhealthy"
    assert [(p["subject"], p["severity"]) for p in down] == [(name, "unhealthy")]
    client.close()


def _status(env: dict[str, str]) -> dict:
    result = subprocess.run([sys.executable, "-m", "ops", "status", "--json"], env=env, capture_output=True, text=True, timeout=120)
    return json.loads(result.stdout)
