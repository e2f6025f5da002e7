"""A folder watcher that cannot reach its server: it retries with growing delays, tells health, and stops at once on shutdown."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from imapclient import IMAPClient

from intake.archive import FileArchive
from intake.base import MemorySink
from intake.email_intake import EmailIngestor
from intake.imap import FolderWatcher, ImapAccount, WatchOptions, connect
from intake.mime import Limits
from intake.quoting import ReplySplitter
from intake.state import AdapterHealth, RedisCheckpointStore
from tests.intake.imap_helpers import wait_for
from tests.servers.base import free_port


@pytest.fixture
def rclient(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


class Attempts:
    """The real ``connect``, remembering when each attempt was made."""

    def __init__(self) -> None:
        self.at: list[float] = []

    def __call__(self, account: ImapAccount) -> IMAPClient:
        self.at.append(time.monotonic())
        return connect(account)


def _watcher(tmp_path: Path, rclient: redis.Redis, namespace: str, stop: threading.Event, attempts: Attempts,
             **options: float) -> FolderWatcher:
    account = ImapAccount(host="127.0.0.1", port=free_port(),  # nobody listens there: connecting is refused
                          user="desk", password="secret", ssl=False, ca_file=None,
                          folders=("INBOX",), oauth2_token_command=None, timeout=2.0)
    ingestor = EmailIngestor(MemorySink(), FileArchive(tmp_path / "raw"), Limits(), ReplySplitter(("en",)))
    return FolderWatcher(account, "INBOX", ingestor, RedisCheckpointStore(rclient, namespace), AdapterHealth(rclient, namespace),
                         WatchOptions(**options), stop, connector=attempts)


def _run(watcher: FolderWatcher) -> threading.Thread:
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    return thread


def test_reconnects_wait_longer_each_time_and_every_failure_reaches_health(
    tmp_path: Path, rclient: redis.Redis, namespace: str,
) -> None:
    # Given a watcher whose server refuses connections, backing off from 0.05 s up to 0.4 s
    stop, attempts = threading.Event(), Attempts()
    watcher = _watcher(tmp_path, rclient, namespace, stop, attempts, backoff_min=0.05, backoff_max=0.4)

    # When it has tried six times
    thread = _run(watcher)
    wait_for(lambda: len(attempts.at) >= 6, timeout=10)
    stop.set()
    thread.join(timeout=5)

    # Then the wait before the sixth try (at least 0.2 s) is longer than before the second (at most 0.075 s)
    gaps = [later - earlier for earlier, later in zip(attempts.at, attempts.at[1:])]
    assert gaps[4] > gaps[0]
    # And the folder's health record holds the refusal
    record = AdapterHealth(rclient, namespace).read_all()[f"imap:{watcher.name}"]
    assert "ConnectionRefusedError" in record["last_error"]


def test_a_shutdown_ends_the_wait_before_the_next_reconnect(tmp_path: Path, rclient: redis.Redis, namespace: str) -> None:
    # Given a watcher that failed to connect and now waits at least 15 s before trying again
    stop, attempts = threading.Event(), Attempts()
    watcher = _watcher(tmp_path, rclient, namespace, stop, attempts, backoff_min=30.0, backoff_max=60.0)
    thread = _run(watcher)
    wait_for(lambda: len(attempts.at) == 1, timeout=10)
    time.sleep(0.2)

    # When the adapter is stopped
    stopped = time.monotonic()
    stop.set()
    thread.join(timeout=5)

    # Then the watcher ends at once, without another attempt
    assert time.monotonic() - stopped < 2
    assert not thread.is_alive()
    assert len(attempts.at) == 1
