"""Helpers of the IMAP tests: an account on the test Dovecot, an adapter fed into the real queue, waiting."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from imapclient import IMAPClient
from sqlalchemy import Engine, func, select

from config.settings import Settings
from intake.archive import FileArchive
from intake.doorbell import Bell
from intake.email_intake import EmailIngestor
from intake.imap import FolderWatcher, ImapAccount, WatchOptions
from intake.mime import Limits
from intake.queue import InflightRegistry, QueueSink
from intake.quoting import ReplySplitter
from intake.state import AdapterHealth, RedisCheckpointStore
from storage.intake_store import MESSAGE, TICKET


def account_for(dovecot, mailbox: tuple[str, str], folders: tuple[str, ...] = ("INBOX",), *, tls: bool = False) -> ImapAccount:  # noqa: ANN001
    user, password = mailbox
    return ImapAccount(
        host="localhost" if tls else "127.0.0.1", port=dovecot.ssl_port if tls else dovecot.port, user=user, password=password,
        ssl=tls, ca_file=dovecot.ca_file if tls else None, folders=folders, oauth2_token_command=None, timeout=10.0,
    )


def append(dovecot, mailbox: tuple[str, str], raws: list[bytes], folder: str = "INBOX") -> None:  # noqa: ANN001
    client = IMAPClient("127.0.0.1", port=dovecot.port, ssl=False, timeout=10)
    client.login(*mailbox)
    if not client.folder_exists(folder):
        client.create_folder(folder)
    for raw in raws:
        client.append(folder, raw)
    client.logout()


def imap_client(dovecot, mailbox: tuple[str, str]) -> IMAPClient:  # noqa: ANN001
    client = IMAPClient("127.0.0.1", port=dovecot.port, ssl=False, timeout=10)
    client.login(*mailbox)
    return client


def ingestor_for(settings: Settings, broker) -> EmailIngestor:  # noqa: ANN001
    sink = QueueSink(broker, InflightRegistry(broker.client, settings.redis_namespace))
    return EmailIngestor(sink, FileArchive(settings.data_dir / "raw"), Limits(), ReplySplitter(settings.languages))


@contextmanager
def watching(account: ImapAccount, settings: Settings, broker, folder: str = "INBOX", bell: Bell | None = None, **options):  # noqa: ANN001, ANN003
    """A FolderWatcher running on a thread (listening to ``bell``, if given); yields it, stops it afterwards."""
    stop = threading.Event()
    client, ns = broker.client, settings.redis_namespace
    watcher = FolderWatcher(
        account, folder, ingestor_for(settings, broker), RedisCheckpointStore(client, ns), AdapterHealth(client, ns),
        WatchOptions(**{"backoff_min": 0.2, "backoff_max": 1.0, **options}), stop, bell=bell,
    )
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    try:
        yield watcher
    finally:
        stop.set()
        thread.join(timeout=20)


def wait_for(condition: Callable[[], bool], timeout: float = 30.0, interval: float = 0.05) -> float:
    """Seconds until ``condition`` held; AssertionError after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def count(engine: Engine, table, *where) -> int:  # noqa: ANN001
    with engine.connect() as c:
        return c.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def tickets(engine: Engine) -> int:
    return count(engine, TICKET)


def messages(engine: Engine) -> int:
    return count(engine, MESSAGE)


CORPUS = Path(__file__).resolve().parents[1] / "data" / "imap-corpus"
