"""The IMAP doorbell (intake.doorbell): Dovecot's push script rings a UDP port, and the folder is read at once.

Against a Dovecot of this module's own, configured with the push-notification plugin and the shipped script
(ops/dovecot/helpdesk-doorbell.lua), over real sockets. A watcher that neither polls (every 300 s) nor IDLEs can
only learn of new mail in time from the bell.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine

from intake.doorbell import MIN_LOOK_INTERVAL, Bell, Doorbell
from intake.state import AdapterHealth, RedisCheckpointStore
from tests.cli import HELPDESK, settings_env, start_cli
from tests.conftest import service_missing
from tests.dovecot import LUA_SOCKET, Dovecot
from tests.factories import make_email
from tests.intake.imap_helpers import account_for, append, imap_client, tickets, wait_for, watching
from tests.servers.base import free_port

pytestmark = pytest.mark.slow

PASSWORD = "bell-secret"
LDA = Path("/usr/lib/dovecot/dovecot-lda")  # Debian's dovecot-core
USERS = 24  # one per test that takes a mailbox, each test once per database


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

        assert doorbell.answer(b"help@desk.example\tinbox")
        assert inbox.clear()
        assert not enquiries.clear()

        assert not doorbell.answer(b"someone@else.example\tINBOX")  # another user of the same server
        assert not doorbell.answer(b"help@desk.example\tArchive")  # a folder nobody watches
        assert not doorbell.answer(b"help@desk.example\tenquiries")  # other names keep their case
        assert not doorbell.answer(b"\xff\xfe" * 5000)  # anything else: no "ring every folder" to flood
        assert not doorbell.answer(b"")
        assert doorbell.ignored == 5
        assert not inbox.clear()
        assert not enquiries.clear()
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
    reused = os.pipe()  # the closed bell's descriptor numbers, most likely, now another file's
    try:
        bell.ring()  # a watcher gone: its bell rings nothing, and writes nothing into whatever now has its numbers
        assert not bell.clear()
        assert not bell.wait(0)
        os.set_blocking(reused[0], False)
        with pytest.raises(BlockingIOError):
            os.read(reused[0], 1)
    finally:
        os.close(reused[0])
        os.close(reused[1])


@contextmanager
def _answering(doorbell: Doorbell, health: AdapterHealth, record: str) -> Iterator[socket.socket]:
    """The doorbell answering on a thread of its own (its health in ``record``); yields a socket to ring it from; stops
    and closes it all after."""
    stop = threading.Event()
    thread = threading.Thread(target=doorbell.run, args=(stop, health, record), daemon=True)
    thread.start()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        yield sender
    finally:
        sender.close()
        stop.set()
        thread.join(timeout=5)
        doorbell.close()
    assert not thread.is_alive()


def test_the_doorbell_answers_datagrams_over_udp_until_stopped_and_says_so_in_its_health_record() -> None:
    health = AdapterHealth(None, "bell")  # in memory
    doorbell = Doorbell(("127.0.0.1", 0), "u1")
    inbox = doorbell.bell("INBOX")
    with _answering(doorbell, health, "imap:u1@host:doorbell") as sender:
        sender.sendto(b"u2\tINBOX", doorbell.address)
        sender.sendto(b"u1\tINBOX", doorbell.address)
        assert inbox.wait(10)
        wait_for(lambda: health.memory["imap:u1@host:doorbell"].get("last_detail") == "rang 1 times; ignored 1", timeout=10)


def test_a_doorbell_rung_only_for_another_user_records_an_error_naming_that_user() -> None:
    # Dovecot may name the user otherwise than the login (auth_username_format): every ring is then ignored, which
    # `helpdesk status` must show rather than a doorbell that quietly never rings
    health = AdapterHealth(None, "bell")
    doorbell = Doorbell(("127.0.0.1", 0), "helpdesk@desk.example")
    doorbell.bell("INBOX")
    with _answering(doorbell, health, "imap:desk:doorbell") as sender:
        sender.sendto(b"helpdesk\tINBOX", doorbell.address)
        wait_for(lambda: "last_error" in health.memory["imap:desk:doorbell"], timeout=10)
    assert "the last named 'helpdesk'" in health.memory["imap:desk:doorbell"]["last_error"]
    assert "last_success" not in health.memory["imap:desk:doorbell"]


def test_a_flood_of_rings_makes_a_bounded_number_of_looks(dovecot, mailbox, settings, broker) -> None:  # noqa: ANN001
    bell = Bell()
    try:
        with watching(account_for(dovecot, mailbox), settings, broker, bell=bell, poll_seconds=300) as watcher:
            wait_for(lambda: watcher.syncs == 1 and dovecot.in_idle(mailbox[0]))
            started = time.monotonic()
            while time.monotonic() - started < 1.0:
                bell.ring()
                time.sleep(0.0002)
            elapsed = time.monotonic() - started
            time.sleep(0.2)
            looks = watcher.syncs - 1
    finally:
        bell.close()
    assert 1 <= looks <= elapsed / MIN_LOOK_INTERVAL + 3, looks


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


def test_dovecot_rings_when_it_delivers_mail_as_a_mail_server_hands_it_over(rung) -> None:  # noqa: ANN001
    # Delivered by dovecot-lda, as Postfix or Exim hand mail to Dovecot (the push plugin's MessageNew event), not APPENDed
    server, port, mailboxes = rung
    user, _ = next(mailboxes)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", port))
    receiver.settimeout(10)
    try:
        delivered = subprocess.run([str(LDA), "-c", str(server.root / "dovecot.conf"), "-d", user, "-f", "someone@example.org"],
                                   input=make_email(message_id="<delivered@x.org>"), capture_output=True, timeout=60)
        assert delivered.returncode == 0, delivered.stderr
        assert receiver.recv(600) == f"{user}\tINBOX".encode()
    finally:
        receiver.close()


def test_a_name_where_the_script_needs_an_address_is_warned_of_once_and_mail_still_arrives() -> None:
    # LuaSocket resolves no host names: `localhost:port` would silently ring nothing. The script says so in Dovecot's
    # log, once, and the APPEND goes through as ever.
    root = Path(tempfile.mkdtemp(prefix="hdtest-doorbell-name-"))
    root.chmod(0o755)
    server = Dovecot(root, with_ssl=False, doorbell=("localhost", free_port()))
    try:
        server.configure()
        server.add_user("n0001", PASSWORD)
        server.start()
        append(server, ("n0001", PASSWORD), [make_email(message_id=f"<named-{i}@x.org>") for i in range(3)])
        client = imap_client(server, ("n0001", PASSWORD))
        try:
            assert client.select_folder("INBOX", readonly=True)[b"EXISTS"] == 3
        finally:
            client.logout()
        log = server.log()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    assert log.count("helpdesk_doorbell must be a numeric address") == 1, log[-2000:]


def test_a_watcher_that_neither_polls_nor_idles_reads_mail_when_rung(rung, listening, settings, broker, engine: Engine,  # noqa: ANN001
                                                                      running_worker) -> None:  # noqa: ANN001
    server, _, _ = rung
    doorbell, mailbox, thread = listening
    thread.start()
    account = account_for(server, mailbox)
    with running_worker(engine), watching(account, settings, broker, bell=doorbell.bell("INBOX"), idle=False, poll_seconds=300) as watcher:
        wait_for(lambda: watcher.syncs == 1)  # its first sync is done: the next poll is 300 s away
        appended = time.monotonic()
        append(server, mailbox, [make_email(message_id="<bell-poll@x.org>")])
        wait_for(lambda: tickets(engine) == 1, timeout=20)
    assert watcher.last_rung >= appended


def test_in_idle_the_bell_makes_the_watcher_look(rung, listening, settings, broker, engine: Engine, running_worker) -> None:  # noqa: ANN001
    server, _, _ = rung
    doorbell, mailbox, thread = listening
    thread.start()
    with running_worker(engine), watching(account_for(server, mailbox), settings, broker, bell=doorbell.bell("INBOX"), poll_seconds=300) as watcher:
        wait_for(lambda: watcher.syncs == 1 and server.in_idle(mailbox[0]))
        for i in range(3):
            appended = time.monotonic()
            append(server, mailbox, [make_email(message_id=f"<bell-idle-{i}@x.org>")])
            wait_for(lambda i=i: tickets(engine) == i + 1, timeout=20)
            assert watcher.last_rung >= appended


def test_helpdesk_intake_imap_listens_on_HELPDESK_IMAP_DOORBELL(rung, settings, broker, engine: Engine, running_worker) -> None:  # noqa: ANN001, N802
    server, port, mailboxes = rung
    user, password = next(mailboxes)
    env = settings_env(settings, imap_host="127.0.0.1", imap_port=server.port, imap_user=user, imap_password=password, imap_ssl="false",
                       imap_idle="false", imap_poll_seconds=300, imap_doorbell=f"127.0.0.1:{port}")
    checkpoints = RedisCheckpointStore(broker.client, settings.redis_namespace)
    with running_worker(engine):
        adapter = start_cli(["intake", "imap"], env)
        try:
            wait_for(lambda: _udp_listening(port), timeout=60)
            wait_for(lambda: checkpoints.get("imap", f"{user}@127.0.0.1", "INBOX") is not None, timeout=60)  # first sync done
            append(server, (user, password), [make_email(message_id="<bell-cli@x.org>")])
            wait_for(lambda: tickets(engine) == 1, timeout=30)  # the next poll is 300 s away
            health = AdapterHealth(broker.client, settings.redis_namespace)  # what `helpdesk status` shows of the doorbell
            wait_for(lambda: health.read_all().get(f"imap:{user}@127.0.0.1:doorbell", {}).get("last_detail") == "rang 1 times; ignored 0",
                     timeout=30)
        finally:
            adapter.send_signal(signal.SIGTERM)
            try:
                out, errors = adapter.communicate(timeout=30)
            finally:
                if adapter.poll() is None:
                    adapter.kill()
                    adapter.wait()
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


def _udp_listening(port: int) -> bool:
    """Whether a UDP socket is bound to ``port`` (read from /proc: binding it to find out would take it)."""
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        if any(int(row.split()[1].rsplit(":", 1)[1], 16) == port for row in rows):
            return True
    return False


def test_the_cli_prints_the_script_dovecot_runs() -> None:
    # A desk installed with pip has no checkout to copy it from
    from ops.intake_cli import DOORBELL_SCRIPT  # noqa: PLC0415

    printed = subprocess.run([*HELPDESK, "intake", "imap-doorbell-script"], capture_output=True, text=True, timeout=60, check=True)
    assert printed.stdout == DOORBELL_SCRIPT.read_text(encoding="utf-8")
    # and a wheel carries it (an editable checkout would find it without): the package data names it
    project = tomllib.loads((DOORBELL_SCRIPT.parents[2] / "pyproject.toml").read_text(encoding="utf-8"))
    shipped = project["tool"]["setuptools"]["package-data"]["ops"]
    assert any(fnmatch.fnmatch("dovecot/helpdesk-doorbell.lua", pattern) for pattern in shipped)
