"""The IMAP adapter: push intake from mailboxes, exact across restarts.

Delivery semantics: a message counts as received once it is in the queue.
Per (account, folder) the checkpoint — UIDVALIDITY and the highest UID whose
message (and every one below it) was durably enqueued — advances only after
the sink returned for a whole batch. After a crash the adapter reads again
from the checkpoint, plus an overlap window on start; the pipeline recognises
a re-read of the same mailbox item and stores it once. A changed UIDVALIDITY
invalidates every stored UID: the folder is read again from the start, and
dedupe by Message-ID keeps tickets single.

Mail is fetched with ``BODY.PEEK[]`` from folders selected read-only, so the
people who share the mailbox still see it unread. Optionally, once the ticket
exists, processed mail is flagged or moved (``HELPDESK_IMAP_PROCESSED_ACTION``).

Bodies are fetched in batches bounded by count (``HELPDESK_IMAP_BATCH_SIZE``)
and by bytes (``HELPDESK_IMAP_BATCH_BYTES``, from ``RFC822.SIZE`` read first; a
larger message is fetched alone), and the checkpoint advances per batch. A
fetched batch is ingested together (``EmailIngestor.ingest_many``: one archive
write, the parse helpers in parallel, one queue round trip); should it fail
unexpectedly, its messages are ingested one by one so that only the one at
fault is quarantined.

One message never stops a folder: whatever goes wrong turning it into an
InboundMessage quarantines it (``intake.supervision.ingest_isolated``) and the
checkpoint moves past it; only transport failures (the network, the queue)
keep the checkpoint and retry. A watcher thread that dies anyway is restarted
by ``intake.supervision.supervise``, which also writes its heartbeat; each sync
records the folder's highest UID and since when mail has waited above the
checkpoint, so ``helpdesk status`` can tell a folder that does not progress.

Push: IMAP IDLE where offered, re-issued before the server's limit; a wake-up
is only a hint to sync from the checkpoint, and a poll every
``HELPDESK_IMAP_POLL_SECONDS`` is the safety net. Where the server rings a
doorbell when mail arrives (``intake.doorbell``, ``HELPDESK_IMAP_DOORBELL``), a
ring is such a hint too, and comes sooner than IDLE's. Every socket operation has a
timeout; any network or server error closes the connection and reconnects with
exponential backoff and jitter (``intake.backoff``: tenacity, waiting on the
stop event, so a shutdown ends the wait).
"""

from __future__ import annotations

import re
import selectors
import shlex
import socket
import ssl
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import structlog
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from imapclient.imapclient import SocketTimeout
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_when_event_set

from config.errors import SettingsError
from config.secrets import command_for_display
from config.settings import ImapSettings
from intake.archive import sha256_hex
from intake.backoff import backoff
from intake.doorbell import MIN_LOOK_INTERVAL, Bell, Doorbell
from intake.email_intake import EmailIngestor
from intake.errors import SinkError
from intake.state import AdapterHealth, Checkpoint, CheckpointStore, ProcessedLog
from intake.supervision import Backoff, Loop, ingest_isolated, ingest_many_isolated, supervise

log = structlog.get_logger("helpdesk.imap")
ADAPTER = "imap"
IDLE_SILENT_READS = 3  # times in a row the socket may be readable with no response before IDLE's connection counts as closed
NETWORK_ERRORS = (IMAPClientError, OSError, socket.timeout, ssl.SSLError, EOFError, SinkError)
_SOURCE = re.compile(r"^imap:(?P<account>[^/]+)/(?P<folder>.+);uidvalidity=(?P<uidvalidity>\d+);uid=(?P<uid>\d+)$")


@dataclass(frozen=True)
class ImapAccount:
    host: str
    port: int
    user: str
    password: str | None
    ssl: bool
    ca_file: Path | None
    folders: tuple[str, ...]
    oauth2_token_command: str | None
    timeout: float

    @property
    def name(self) -> str:
        return f"{self.user}@{self.host}"

    @classmethod
    def from_group(cls, imap: ImapSettings) -> "ImapAccount":
        """The account of ``imap``; SettingsError naming what is missing when it cannot log in."""
        missing = imap.missing_for_intake()
        if missing:
            raise SettingsError(f"IMAP intake needs {', '.join(missing)}")
        return cls(
            host=imap.host,  # type: ignore[arg-type]
            port=imap.resolved_port,
            user=imap.user,  # type: ignore[arg-type]
            password=imap.password,
            ssl=imap.ssl,
            ca_file=imap.ca_file,
            folders=imap.folders,
            oauth2_token_command=imap.oauth2_token_command,
            timeout=float(imap.timeout_seconds),
        )


def source_of(account: ImapAccount, folder: str, uidvalidity: int, uid: int) -> str:
    return f"imap:{account.name}/{folder};uidvalidity={uidvalidity};uid={uid}"


def parse_source(source: str) -> tuple[str, str, int, int] | None:
    """(account, folder, uidvalidity, uid) of an IMAP source string, or None for another kind of source."""
    match = _SOURCE.match(source)
    if match is None:
        return None
    return match["account"], match["folder"], int(match["uidvalidity"]), int(match["uid"])


def connect(account: ImapAccount) -> IMAPClient:
    """A logged-in client; every socket operation times out after ``account.timeout`` seconds."""
    context = None
    if account.ssl:
        context = ssl.create_default_context(cafile=str(account.ca_file) if account.ca_file else None)
    client = IMAPClient(
        account.host, port=account.port, ssl=account.ssl, ssl_context=context,
        timeout=SocketTimeout(connect=account.timeout, read=account.timeout),
    )
    try:
        if account.oauth2_token_command:
            client.oauth2_login(account.user, oauth2_token(account.oauth2_token_command, account.timeout))
        else:
            client.login(account.user, account.password or "")
    except BaseException:
        _close(client)
        raise
    return client


def oauth2_token(command: str, timeout: float) -> str:
    """Run the desk's token provider (e.g. a helper refreshing a Google or Microsoft 365 token) and read the token.

    Its arguments often carry a client secret: errors name the program only, never the arguments or its output.
    """
    shown = command_for_display(command)
    try:
        result = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise IMAPClientError(f"OAuth2 token command {shown} timed out after {timeout:g} s") from None
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise IMAPClientError(f"OAuth2 token command {shown} could not be run: {reason}") from None
    if result.returncode != 0:
        raise IMAPClientError(f"OAuth2 token command {shown} failed with exit status {result.returncode}")
    token = result.stdout.strip()
    if not token:
        raise IMAPClientError(f"OAuth2 token command {shown} printed no token")
    return token


def _close(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:  # noqa: BLE001 - a dead connection cannot log out politely
        try:
            client.shutdown()
        except Exception:  # noqa: BLE001
            pass


@dataclass(frozen=True)
class WatchOptions:
    batch_size: int = 100
    batch_bytes: int = 20 * 1024 * 1024
    overlap: int = 20
    poll_seconds: float = 60.0
    idle: bool = True
    idle_refresh_seconds: float = 540.0
    max_raw_bytes: int = 30 * 1024 * 1024
    backoff_min: float = 1.0  # reconnecting after a network or server error
    backoff_max: float = 60.0
    restart: Backoff = Backoff(1.0, 300.0)  # restarting a watcher that died
    heartbeat_seconds: float = 5.0

    @classmethod
    def from_group(cls, imap: ImapSettings, *, max_raw_bytes: int, heartbeat_seconds: float) -> "WatchOptions":
        return cls(
            batch_size=imap.batch_size,
            batch_bytes=imap.batch_bytes,
            heartbeat_seconds=heartbeat_seconds,
            overlap=imap.overlap,
            poll_seconds=float(imap.poll_seconds),
            idle=imap.idle,
            idle_refresh_seconds=float(imap.idle_refresh_seconds),
            max_raw_bytes=max_raw_bytes,
        )


class FolderWatcher:
    """One folder of one account, on a connection of its own: sync from the checkpoint, then wait for more."""

    def __init__(
        self,
        account: ImapAccount,
        folder: str,
        ingestor: EmailIngestor,
        checkpoints: CheckpointStore,
        health: AdapterHealth,
        options: WatchOptions,
        stop: threading.Event,
        connector: Callable[[ImapAccount], IMAPClient] = connect,
        bell: Bell | None = None,
    ) -> None:
        self.account = account
        self.folder = folder
        self.ingestor = ingestor
        self.checkpoints = checkpoints
        self.health = health
        self.options = options
        self.stop = stop
        self.connector = connector
        self.bell = bell  # the doorbell's, when the server rings one (intake.doorbell): look at once, not when IDLE speaks
        self.last_rung = 0.0  # when the bell last made this watcher look (time.monotonic)
        self.syncs = 0  # syncs completed on this watcher
        self.name = f"{account.name}/{folder}"
        self.idle_supported: bool | None = None
        self.waiting_since: float | None = None  # when mail above the checkpoint was first seen, until it is all read
        self.client: IMAPClient | None = None  # the connection, while it works
        self.rounds = Retrying(  # a failed round reconnects after a backoff; a round that went well starts the count again
            retry=retry_if_exception_type(NETWORK_ERRORS),
            wait=backoff(options.backoff_min, options.backoff_max),
            stop=stop_when_event_set(stop),
            sleep=stop.wait,
            after=self._failed,
            before_sleep=self._reconnecting,
            retry_error_callback=lambda state: None,  # stopped while failing: nothing to raise, the watcher ends
        )

    def run(self) -> None:
        """Until stopped: connect, sync, wait for news; a network or server error closes the connection and the
        round is tried again after a backoff with jitter."""
        self.ingestor.parser.prestart()  # the parse helpers start while we connect and search
        try:
            while not self.stop.is_set():
                self.rounds(self._round)
        finally:
            self._disconnect()

    def _round(self) -> None:
        """Connect if need be, sync from the checkpoint (with the overlap on a new connection), then wait for news."""
        if self.stop.is_set():
            return
        try:
            client, fresh = self.client, self.client is None
            if client is None:
                client = self.client = self.connector(self.account)
                self.idle_supported = self.options.idle and client.has_capability("IDLE")
            self.sync(client, overlap=fresh)
            if _new_mail_reported(client) or _new_mail_since(client):
                return  # mail arrived while we searched: IDLE would report only later changes
            if self.idle_supported:
                self._idle(client)
            else:
                self._poll_wait()
        except BaseException:
            self._disconnect()
            raise

    def _disconnect(self) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            _close(client)

    def _failed(self, state: RetryCallState) -> None:
        """tenacity's ``after`` hook: every network or server error goes to the folder's health record."""
        self.health.error(f"{ADAPTER}:{self.name}", _failure(state))

    def _reconnecting(self, state: RetryCallState) -> None:
        """tenacity's ``before_sleep`` hook: say what failed and when the next try comes."""
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning("imap connection failed; reconnecting", folder=self.name, error=_failure(state), retry_in=round(delay, 1))

    def sync(self, client: IMAPClient, *, overlap: bool = False) -> int:
        """Enqueue every message above the checkpoint (and ``overlap`` below it); returns how many were read."""
        info = client.select_folder(self.folder, readonly=True)
        _new_mail_reported(client)  # the EXISTS of EXAMINE itself: what we are about to search
        uidvalidity = int(info[b"UIDVALIDITY"])
        checkpoint = self.checkpoints.get(ADAPTER, self.account.name, self.folder)
        last = 0
        if checkpoint is not None and checkpoint.uidvalidity == uidvalidity:
            last = checkpoint.last_uid
        elif checkpoint is not None:
            note = f"UIDVALIDITY changed from {checkpoint.uidvalidity} to {uidvalidity}: reading the folder again"
            log.warning("imap folder resynchronising", folder=self.name, detail=note)
            self.health.error(f"{ADAPTER}:{self.name}", note)
        start = max(1, last + 1 - (self.options.overlap if overlap else 0))
        # `UID n:*` always includes the highest message even when its UID is below n: filter.
        uids = sorted(uid for uid in client.search(["UID", f"{start}:*"]) if uid >= start)
        self._record_progress(max(uids, default=last), last)
        read = 0
        for chunk in _chunks(uids, self.options.batch_size):
            sizes = client.fetch(chunk, ["RFC822.SIZE"])
            for batch in _byte_batches(chunk, sizes, self.options.batch_bytes, self.options.max_raw_bytes):
                read += self._ingest_batch(client, uidvalidity, batch, sizes)
                last = max(last, batch[-1])
                self.checkpoints.set(ADAPTER, self.account.name, self.folder, Checkpoint(uidvalidity, last))
        if checkpoint is None or checkpoint.uidvalidity != uidvalidity:
            self.checkpoints.set(ADAPTER, self.account.name, self.folder, Checkpoint(uidvalidity, last))
        self._record_progress(last, last)
        self.health.success(f"{ADAPTER}:{self.name}", f"uidvalidity={uidvalidity} last_uid={last} read={read}")
        self.syncs += 1
        return read

    def _record_progress(self, highest: int, checkpoint: int) -> None:
        """Tell health the folder's highest UID, and since when mail has waited above the checkpoint."""
        if highest <= checkpoint:
            self.waiting_since = None
        elif self.waiting_since is None:
            self.waiting_since = time.time()
        self.health.progress(f"{ADAPTER}:{self.name}", highest, self.waiting_since)

    def _ingest_batch(self, client: IMAPClient, uidvalidity: int, batch: list[int], sizes: dict) -> int:
        wanted = [uid for uid in batch if uid in sizes and _size(sizes[uid]) <= self.options.max_raw_bytes]
        bodies = client.fetch(wanted, ["BODY.PEEK[]"]) if wanted else {}
        read = 0
        items: list[tuple[bytes, str]] = []  # parsed together: one durable archive write, the pool's helpers in parallel
        with self.ingestor.sink.batched():  # queued together, before the caller moves the checkpoint past them
            for uid in batch:  # in UID order; a message expunged meanwhile is simply gone
                source = source_of(self.account, self.folder, uidvalidity, uid)
                body = bodies[uid].get(b"BODY[]") if uid in bodies else None
                if isinstance(body, bytes):
                    items.append((body, source))
                elif uid in bodies and b"BODY[]" in bodies[uid]:  # a server may answer NIL: that item alone is quarantined
                    ingest_isolated(self.ingestor, body, source)  # type: ignore[arg-type]
                    read += 1
                elif uid in sizes:
                    size = sizes[uid].get(b"RFC822.SIZE", 0)
                    self.ingestor.reject(sha256_hex(source.encode()), "too_large", f"{size} bytes exceeds {self.options.max_raw_bytes}",
                                         source)
                    read += 1
            read += len(ingest_many_isolated(self.ingestor, items))  # one bad mail is quarantined, not raised
        return read

    def _idle(self, client: IMAPClient) -> None:
        """Wait in IDLE until the server says something, the bell rings, the refresh interval ends, or we are stopped."""
        client.idle()
        try:
            with selectors.DefaultSelector() as waiting:  # poll or epoll: no limit on descriptor numbers, as select has
                waiting.register(client.socket(), selectors.EVENT_READ, "server")
                if self.bell is not None:
                    waiting.register(self.bell, selectors.EVENT_READ, "bell")
                deadline = time.monotonic() + min(self.options.idle_refresh_seconds, self.options.poll_seconds)
                silent = 0  # readable, yet no response: in a row
                while not self.stop.is_set() and time.monotonic() < deadline:
                    ready = {key.data for key, _ in waiting.select(min(1.0, max(0.0, deadline - time.monotonic())))}
                    if "bell" in ready and self.bell is not None:
                        self._answer(self.bell)
                        break
                    if client.idle_check(timeout=0):
                        break  # any response is a hint: leave IDLE and sync from the checkpoint
                    silent = silent + 1 if "server" in ready else 0
                    if silent >= IDLE_SILENT_READS:  # imapclient answers a closed connection with no responses, at once
                        raise ConnectionResetError("the server closed the connection during IDLE")
        finally:
            client.idle_done()

    def _poll_wait(self) -> None:
        """Without IDLE: wait the polling interval, or until the bell rings or we are stopped."""
        deadline = time.monotonic() + self.options.poll_seconds
        while not self.stop.is_set() and (left := deadline - time.monotonic()) > 0:
            if self.bell is None:
                self.stop.wait(left)
            elif self.bell.wait(min(1.0, left)):
                self._answer(self.bell)
                return

    def _answer(self, bell: Bell) -> None:
        """Forget the bell's rings so far (one look answers them all); look no sooner than MIN_LOOK_INTERVAL after the last."""
        bell.clear()
        early = self.last_rung + MIN_LOOK_INTERVAL - time.monotonic()
        if early > 0:
            self.stop.wait(early)
        self.last_rung = time.monotonic()


def _failure(state: RetryCallState) -> str:
    """``ExcType: message`` of the attempt that just failed."""
    exc = state.outcome.exception() if state.outcome is not None else None
    return f"{type(exc).__name__}: {exc}"


def _new_mail_reported(client: IMAPClient) -> bool:
    """Whether the server sent an ``EXISTS`` with the answers to our last commands (and forget it).

    imaplib files such unsolicited responses away and imapclient does not hand them back, so mail
    appended while a SEARCH ran would otherwise wait for the next poll: IDLE reports only later changes.
    """
    untagged = getattr(getattr(client, "_imap", None), "untagged_responses", None)
    if not isinstance(untagged, dict):
        return False
    reported = untagged.pop("EXISTS", None)
    untagged.pop("RECENT", None)
    return bool(reported)


def _new_mail_since(client: IMAPClient) -> bool:
    """NOOP just before IDLE: the server reports mail that arrived since our search (Dovecot's IDLE
    itself may not mention it until its next check, 30 s later)."""
    _text, responses = client.noop()
    return any(isinstance(r, tuple) and len(r) >= 2 and r[1] == b"EXISTS" for r in responses)


class ProcessedMover:
    """Flags or moves mail whose tickets exist (the pipeline lists their sources in the ProcessedLog)."""

    def __init__(
        self,
        account: ImapAccount,
        log_: ProcessedLog,
        health: AdapterHealth,
        action: str,
        flag: str,
        target: str,
        stop: threading.Event,
        connector: Callable[[ImapAccount], IMAPClient] = connect,
        interval: float = 2.0,
    ) -> None:
        self.account, self.log, self.health, self.action = account, log_, health, action
        self.flag, self.target, self.stop, self.connector, self.interval = flag, target, stop, connector, interval

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            sources = self.log.take(ADAPTER, self.account.name)
            if not sources:
                continue
            try:
                self.apply(sources)
            except NETWORK_ERRORS as exc:
                self.log.give_back(ADAPTER, self.account.name, sources)
                self.health.error(f"{ADAPTER}:{self.account.name}:processed", f"{type(exc).__name__}: {exc}")
            except Exception:
                self.log.give_back(ADAPTER, self.account.name, sources)  # not lost: the supervisor restarts us and we try again
                raise

    def apply(self, sources: list[str]) -> int:
        by_folder: dict[tuple[str, int], list[int]] = defaultdict(list)
        for source in sources:
            parsed = parse_source(source)
            if parsed is not None and parsed[0] == self.account.name:
                by_folder[(parsed[1], parsed[2])].append(parsed[3])
        client = self.connector(self.account)
        done = 0
        try:
            for (folder, uidvalidity), uids in by_folder.items():
                info = client.select_folder(folder)
                if int(info[b"UIDVALIDITY"]) != uidvalidity:
                    continue  # the UIDs no longer mean these messages
                if self.action == "flag":
                    client.add_flags(uids, [self.flag], silent=True)
                else:
                    client.move(uids, self.target)
                done += len(uids)
        finally:
            _close(client)
        return done


class ImapAdapter:
    """Every folder of the account on a thread of its own, plus the processed-mail mover and the doorbell when enabled."""

    def __init__(self, watchers: list[FolderWatcher], mover: ProcessedMover | None = None, doorbell: Doorbell | None = None) -> None:
        if not watchers:
            raise ValueError("an IMAP adapter needs at least one folder")
        self.watchers = watchers
        self.mover = mover
        self.doorbell = doorbell

    def run(self, stop: threading.Event) -> None:
        """Until ``stop``: every watcher (and the mover, and the doorbell) supervised — restarted when it dies — with a heartbeat each."""
        loops = [Loop(f"{ADAPTER}:{w.name}", w.run, (f"{ADAPTER}:{w.name}",)) for w in self.watchers]
        if self.mover is not None:
            loops.append(Loop(f"{ADAPTER}:processed", self.mover.run, (f"{ADAPTER}:{self.mover.account.name}:processed",)))
        if self.doorbell is not None:
            doorbell = self.doorbell
            record, health = f"{ADAPTER}:{self.watchers[0].account.name}:doorbell", self.watchers[0].health
            loops.append(Loop(f"{ADAPTER}:doorbell", lambda: doorbell.run(stop, health, record), (record,)))
        options = self.watchers[0].options
        supervise(loops, stop, self.watchers[0].health, restart=options.restart, heartbeat_seconds=options.heartbeat_seconds)


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _size(info: dict) -> int:
    return int(info.get(b"RFC822.SIZE", 0) or 0)


def _byte_batches(uids: list[int], sizes: dict, limit: int, max_raw_bytes: int) -> Iterator[list[int]]:
    """``uids`` in order, grouped so that one FETCH of their bodies carries at most ``limit`` bytes.

    A message larger than ``limit`` goes alone; one not fetched at all (too large to accept, or gone) weighs nothing.
    """
    batch: list[int] = []
    weight = 0
    for uid in uids:
        size = _size(sizes[uid]) if uid in sizes else 0
        size = size if size <= max_raw_bytes else 0
        if batch and weight + size > limit:
            yield batch
            batch, weight = [], 0
        batch.append(uid)
        weight += size
    if batch:
        yield batch
