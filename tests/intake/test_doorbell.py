"""The IMAP doorbell (intake.doorbell): Dovecot's push script rings a UDP port, and the folder is read at once.

Against a Dovecot of this module's own, configured with the push-notification plugin and the shipped script
(ops/dovecot/helpdesk-doorbell.lua), over real sockets. A watcher that neither polls (every 300 s) nor IDLEs can
only learn of new mail in time from the bell.
"""

from __future__ import annotations

import itertools
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from intake.doorbell import MIN_LOOK_INTERVAL, Bell, Doorbell
from tests.cli import HELPDESK, settings_env, start_cli
from tests.conftest import service_missing
from tests.dovecot import LUA_SOCKET, Dovecot
from tests.factories import make_email
from tests.intake.imap_helpers import account_for, append, tickets, wait_for, watching
from tests.servers.base import free_port

pytestmark = pytest.mark.slow

PASSWORD = "bell-secret"
USERS = 12


@pytest.fixture(scope="module")
def rung() -> Iterator[tuple[Dovecot, int, Iterator[tuple[str, str]]]]:
    """(a Dovecot that rings 127.0.0.1:<port> on every delivery and APPEND, that port, its mailboxes one per test)."""
    root = Path(tempfile.mkdtemp(prefix="hdtest-doorbell-"))
    root.chmod(0o755)
    port = free_port()
    server = Dovecot(root, with_ssl=False, doorbell=("127.0.0.1", port))
    try:
        if not server.available:
            service_missing("Dovecot (Debian package dovecot-imapd)")
        if not LUA_SOCKET.exists():
            service_missing("lua-socket (Debian package lua-socket), which the doorbell script needs")
        server.configure()
        for i in range(USERS):
            server.add_user(f"r{i:04d}", PASSWORD)
        server.start()
        yield server, port, iter((f"r{i:04d}", PASSWORD) for i in range(USERS))
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def listening(rung):  # noqa: ANN001, ANN201
    """Start a doorbell for a mailbox of this test's own on the port the server rings; yields (doorbell, mailbox)."""
    server, port, mailboxes = rung
    mailbox = next(mailboxes)
    doorbell = Doorbell(("127.0.0.1", port), mailbox[0])
    stop = threading.Event()
    thread = threading.Thread(target=doorbell.run, args=(stop,), daemon=True)
    try:
        yield doorbell, mailbox, thread
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(timeout=5)
        doorbell.close()


# -- the doorbell and its bells ---------------------------------------------------------------------------------

def test_a_datagram_rings_only_the_folder_it_names_of_this_account() -> None:
    doorbell = Doorbell(("127.0.0.1", 0), "Help@Desk.example")
    try:
        inbox, enquiries = doorbell.bell("INBOX"), doorbell.bell("Enquiries")
        assert doorbell.bell("inbox") is inbox  # INBOX is one folder whatever its case

        assert doorbell.answer(b"help@desk.example\tinbox") == 1
        assert inbox.clear()
        assert not enquiries.clear()

        assert doorbell.answer(b"someone@else.example\tINBOX") == 0  # another user of the same server
        assert doorbell.ignored == 1
        assert not inbox.clear()

        assert doorbell.answer(b"help@desk.example\tArchive") == 0  # a folder nobody watches
        assert doorbell.answer(b"help@desk.example\tenquiries") == 0  # other names keep their case
        assert not enquiries.clear()

        assert doorbell.answer(b"\xff\xfe" * 5000) == 2  # no tab: a bare "look now" rings every folder; bytes past 512 unread
        assert inbox.clear()
        assert enquiries.clear()
    finally:
        doorbell.close()


def test_any_number_of_rings_is_one_look_and_ringing_never_blocks() -> None:
    bell = Bell()
    try:
        assert not bell.wait(0)
        for _ in range(200_000):  # more than a pipe holds (64 KiB): the rings past it are already answered
            bell.ring()
        assert bell.wait(0)
        assert bell.clear()
        assert not bell.clear()
        assert not bell.wait(0)
    finally:
        bell.close()
    bell.ring()  # a watcher gone: ringing its closed bell is not an error


def test_the_doorbell_answers_datagrams_over_udp_until_stopped() -> None:
    doorbell = Doorbell(("127.0.0.1", 0), "u1")
    inbox = doorbell.bell("INBOX")
    stop = threading.Event()
    thread = threading.Thread(target=doorbell.run, args=(stop,), daemon=True)
    thread.start()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sender.sendto(b"u2\tINBOX", doorbell.address)
        sender.sendto(b"u1\tINBOX", doorbell.address)
        assert inbox.wait(10)
        wait_for(lambda: doorbell.ignored == 1, timeout=10)
    finally:
        sender.close()
        stop.set()
        thread.join(timeout=5)
        doorbell.close()
    assert not thread.is_alive()


def test_a_flood_of_rings_makes_a_bounded_number_of_looks(dovecot, mailbox, settings, broker) -> None:  # noqa: ANN001
    bell = Bell()
    try:
        with watching(account_for(dovecot, mailbox), settings, broker, bell=bell, poll_seconds=300) as watcher:
            wait_for(lambda: watcher.idle_supported is not None)
            time.sleep(0.3)  # in IDLE
            looks = itertools.count()
            sync = watcher.sync
            watcher.sync = lambda client, **kw: (next(looks), sync(client, **kw))[1]  # type: ignore[method-assign]
            started = time.monotonic()
            while time.monotonic() - started < 1.0:
                bell.ring()
                time.sleep(0.0002)
            elapsed = time.monotonic() - started
            time.sleep(0.2)
        made = next(looks)
    finally:
        bell.close()
    assert 1 <= made <= elapsed / MIN_LOOK_INTERVAL + 3, made


# -- with Dovecot ringing it -----------------------------------------------------------------------------------

def test_dovecot_rings_with_the_user_and_folder_of_each_append(rung) -> None:  # noqa: ANN001
    server, port, mailboxes = rung
    mailbox = next(mailboxes)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", port))
    receiver.settimeout(10)
    try:
        append(server, mailbox, [make_email(message_id="<rung-1@x.org>")])
        assert receiver.recv(600) == f"{mailbox[0]}\tINBOX".encode()
        append(server, mailbox, [make_email(message_id="<rung-2@x.org>")], folder="Support")
        assert receiver.recv(600) == f"{mailbox[0]}\tSupport".encode()
    finally:
        receiver.close()


def test_a_watcher_that_neither_polls_nor_idles_reads_mail_when_rung(rung, listening, settings, broker, engine: Engine,  # noqa: ANN001
                                                                      running_worker) -> None:  # noqa: ANN001
    server, _, _ = rung
    doorbell, mailbox, thread = listening
    thread.start()
    account = account_for(server, mailbox)
    with running_worker(engine), watching(account, settings, broker, bell=doorbell.bell("INBOX"), idle=False, poll_seconds=300) as watcher:
        wait_for(lambda: watcher.idle_supported is False)
        time.sleep(0.3)  # its first sync is done: the next poll is 300 s away
        append(server, mailbox, [make_email(message_id="<bell-poll@x.org>")])
        wait_for(lambda: tickets(engine) == 1, timeout=20)
    assert watcher.last_rung > 0


def test_in_idle_the_bell_makes_the_watcher_look(rung, listening, settings, broker, engine: Engine, running_worker) -> None:  # noqa: ANN001
    server, _, _ = rung
    doorbell, mailbox, thread = listening
    thread.start()
    with running_worker(engine), watching(account_for(server, mailbox), settings, broker, bell=doorbell.bell("INBOX"), poll_seconds=300) as watcher:
        wait_for(lambda: watcher.idle_supported is True)
        time.sleep(0.3)
        for i in range(3):
            append(server, mailbox, [make_email(message_id=f"<bell-idle-{i}@x.org>")])
            wait_for(lambda i=i: tickets(engine) == i + 1, timeout=20)
        assert watcher.last_rung > 0


def test_helpdesk_intake_imap_listens_on_HELPDESK_IMAP_DOORBELL(rung, settings, engine: Engine, running_worker) -> None:  # noqa: ANN001, N802
    server, port, mailboxes = rung
    user, password = next(mailboxes)
    env = settings_env(settings, imap_host="127.0.0.1", imap_port=server.port, imap_user=user, imap_password=password, imap_ssl="false",
                       imap_idle="false", imap_poll_seconds=300, imap_doorbell=f"127.0.0.1:{port}")
    with running_worker(engine):
        adapter = start_cli(["intake", "imap"], env)
        try:
            wait_for(lambda: _udp_port_taken(port), timeout=60)
            time.sleep(0.5)  # its first sync is done: the next poll is 300 s away
            append(server, (user, password), [make_email(message_id="<bell-cli@x.org>")])
            wait_for(lambda: tickets(engine) == 1, timeout=30)
        finally:
            adapter.send_signal(signal.SIGTERM)
            out, errors = adapter.communicate(timeout=30)
    assert f"the doorbell on udp 127.0.0.1:{port}" in out, errors


def test_a_doorbell_it_cannot_use_stops_the_adapter_and_says_why(rung, settings) -> None:  # noqa: ANN001
    server, _, mailboxes = rung
    user, password = next(mailboxes)
    base = {"imap_host": "127.0.0.1", "imap_port": server.port, "imap_user": user, "imap_password": password, "imap_ssl": "false"}
    malformed = _run(settings_env(settings, **base, imap_doorbell="localhost"))
    assert malformed.returncode != 0
    assert "HELPDESK_IMAP_DOORBELL" in malformed.stdout + malformed.stderr
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    try:
        busy = _run(settings_env(settings, **base, imap_doorbell=f"127.0.0.1:{taken.getsockname()[1]}"))
    finally:
        taken.close()
    assert busy.returncode != 0
    assert "cannot listen there" in busy.stdout + busy.stderr


def _run(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([*HELPDESK, "intake", "imap"], env=env, capture_output=True, text=True, timeout=60)


def _udp_port_taken(port: int) -> bool:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.bind(("127.0.0.1", port))
    except OSError:
        return True
    finally:
        probe.close()
    return False
