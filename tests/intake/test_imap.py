"""The IMAP adapter against a real Dovecot over real sockets, feeding the real queue, worker and database."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from intake.imap import parse_source
from intake.state import RedisCheckpointStore
from storage.intake_store import EVENT, MESSAGE, QUARANTINE, TICKET
from tests.cli import cli_env, run_cli, start_cli
from tests.factories import make_email
from tests.intake.imap_helpers import (
    account_for,
    append,
    count,
    imap_client,
    messages,
    tickets,
    wait_for,
    watching,
)
from tests.waiting import wait_until_drained

pytestmark = pytest.mark.slow


def test_append_becomes_a_ticket_through_idle(dovecot, mailbox, settings, broker, engine: Engine, running_worker) -> None:  # noqa: ANN001
    with running_worker(engine), watching(account_for(dovecot, mailbox), settings, broker, poll_seconds=300) as watcher:
        wait_for(lambda: dovecot.in_idle(mailbox[0]))  # with a 300 s poll, only IDLE can deliver in time
        append(dovecot, mailbox, [make_email(message_id="<idle@x.org>")])
        latency = wait_for(lambda: tickets(engine) == 1, timeout=15)
    assert watcher.idle_supported is True
    assert latency < 10


def test_polling_mode_when_idle_is_off(dovecot, mailbox, settings, broker, engine: Engine, running_worker) -> None:  # noqa: ANN001
    with running_worker(engine), watching(account_for(dovecot, mailbox), settings, broker, idle=False, poll_seconds=0.3) as watcher:
        append(dovecot, mailbox, [make_email(message_id="<poll@x.org>")])
        wait_for(lambda: tickets(engine) == 1, timeout=15)
    assert watcher.idle_supported is False


def test_tls_with_a_verified_certificate(dovecot, mailbox, settings, broker, engine: Engine, running_worker) -> None:  # noqa: ANN001
    append(dovecot, mailbox, [make_email(message_id="<tls@x.org>")])
    with running_worker(engine), watching(account_for(dovecot, mailbox, tls=True), settings, broker):
        wait_for(lambda: tickets(engine) == 1, timeout=15)


def test_mail_stays_unread_and_the_checkpoint_advances(dovecot, mailbox, settings, broker, engine: Engine, running_worker) -> None:  # noqa: ANN001
    append(dovecot, mailbox, [make_email(message_id=f"<s{i}@x.org>", subject=f"Question {i}") for i in range(5)])
    account = account_for(dovecot, mailbox)
    with running_worker(engine), watching(account, settings, broker, batch_size=2):
        wait_for(lambda: tickets(engine) == 5, timeout=20)
    client = imap_client(dovecot, mailbox)
    client.select_folder("INBOX", readonly=True)
    flags = client.get_flags(client.search(["ALL"]))
    client.logout()
    assert all(b"\\Seen" not in f for f in flags.values())
    checkpoint = RedisCheckpointStore(broker.client, settings.redis_namespace).get("imap", account.name, "INBOX")
    assert checkpoint is not None
    assert checkpoint.last_uid == 5


def test_uid_star_quirk_and_the_overlap_window_store_nothing_twice(dovecot, mailbox, settings, broker, engine: Engine, running_worker) -> None:  # noqa: ANN001
    # Given three messages, read and stored
    append(dovecot, mailbox, [make_email(message_id=f"<q{i}@x.org>", subject=f"Q {i}") for i in range(3)])
    account = account_for(dovecot, mailbox)
    with running_worker(engine):
        with watching(account, settings, broker) as watcher:
            wait_for(lambda: tickets(engine) == 3, timeout=15)
            client = imap_client(dovecot, mailbox)
            # When it syncs from the checkpoint (the highest UID), then `UID 4:*` still answers with message 3: nothing is read
            assert watcher.sync(client) == 0
            # When a restart re-reads the overlap window below the checkpoint, then all three are read again
            assert watcher.sync(client, overlap=True) == 3
            client.logout()
        wait_until_drained(broker)
    # Then each was stored once
    assert tickets(engine) == 3
    assert messages(engine) == 3
    assert count(engine, EVENT, EVENT.c.kind == "duplicate") == 0  # a re-read is not a duplicate


def test_dovecot_restart_reconnects(dovecot, mailbox, settings, broker, engine: Engine, running_worker) -> None:  # noqa: ANN001
    with running_worker(engine), watching(account_for(dovecot, mailbox), settings, broker, poll_seconds=1) as watcher:
        append(dovecot, mailbox, [make_email(message_id="<before@x.org>")])
        wait_for(lambda: tickets(engine) == 1, timeout=15)
        dovecot.restart()
        append(dovecot, mailbox, [make_email(message_id="<after@x.org>", subject="After the restart")])
        wait_for(lambda: tickets(engine) == 2, timeout=30)
    errors = watcher.health.read_all()[f"imap:{watcher.name}"]
    assert errors.get("last_error")  # the outage was noticed and recorded


def test_a_session_the_server_drops_during_idle_is_reconnected_at_once(dovecot, mailbox, settings, broker) -> None:  # noqa: ANN001
    # The server's process for the session dies while the watcher is in IDLE: the connection ends without a BYE, and
    # imapclient answers every later check with no responses. The watcher must reconnect, not spin until IDLE's 300 s end.
    with watching(account_for(dovecot, mailbox), settings, broker, poll_seconds=300) as watcher:
        wait_for(lambda: watcher.syncs == 1 and dovecot.in_idle(mailbox[0]))
        assert dovecot.kill_sessions(mailbox[0]) == 1
        wait_for(lambda: watcher.syncs == 2, timeout=30)


def test_uidvalidity_change_resynchronises_without_duplicate_tickets(dovecot, mailbox, settings, broker, engine: Engine, running_worker) -> None:  # noqa: ANN001
    # Given three messages in a folder, read and stored
    originals = [make_email(message_id=f"<v{i}@x.org>", subject=f"V {i}") for i in range(3)]
    account = account_for(dovecot, mailbox, ("Support",))
    append(dovecot, mailbox, originals, folder="Support")
    checkpoints = RedisCheckpointStore(broker.client, settings.redis_namespace)
    with running_worker(engine):
        with watching(account, settings, broker, folder="Support"):
            wait_for(lambda: tickets(engine) == 3, timeout=15)
        before = checkpoints.get("imap", account.name, "Support")
        # When the folder is deleted and created again (new UIDVALIDITY), the same mail coming back, plus one new message
        client = imap_client(dovecot, mailbox)
        client.delete_folder("Support")
        client.logout()
        append(dovecot, mailbox, [*originals, make_email(message_id="<v-new@x.org>", subject="Brand new")], folder="Support")
        with watching(account, settings, broker, folder="Support"):
            wait_for(lambda: tickets(engine) == 4, timeout=15)
            wait_for(lambda: getattr(checkpoints.get("imap", account.name, "Support"), "last_uid", 0) == 4, timeout=15)  # all queued
            wait_until_drained(broker)
    # Then the checkpoint starts again under the new UIDVALIDITY
    after = checkpoints.get("imap", account.name, "Support")
    assert after.uidvalidity != before.uidvalidity
    assert after.last_uid == 4
    # And the mail that came back is not stored twice
    assert tickets(engine) == 4
    assert messages(engine) == 4


def test_cc_fan_out_to_two_folders_gives_one_ticket(dovecot, mailbox, settings, broker, engine: Engine, running_worker) -> None:  # noqa: ANN001
    raw = make_email(message_id="<fan@x.org>", to="helpdesk@osds.example, support@osds.example")
    copy_for_support = b"Delivered-To: support@osds.example\r\n" + raw
    append(dovecot, mailbox, [b"Delivered-To: helpdesk@osds.example\r\n" + raw])
    append(dovecot, mailbox, [copy_for_support], folder="Support")
    account = account_for(dovecot, mailbox, ("INBOX", "Support"))
    with running_worker(engine), watching(account, settings, broker), watching(account, settings, broker, folder="Support"):
        wait_for(lambda: count(engine, EVENT, EVENT.c.kind == "duplicate") == 1, timeout=15)
    assert tickets(engine) == 1
    assert messages(engine) == 1


def test_robots_open_no_tickets(dovecot, mailbox, settings, broker, engine: Engine, running_worker) -> None:  # noqa: ANN001
    enquiry = make_email(message_id="<orig@x.org>")
    out_of_office = make_email(message_id="<ooo@x.org>", sender="ana@hacienda.gob.mx", subject="Respuesta automática: fuera de la oficina",
                               in_reply_to="<orig@x.org>", headers={"Auto-Submitted": "auto-replied"})
    newsletter = make_email(message_id="<news@x.org>", sender="news@lists.example.org", subject="Monthly digest",
                            headers={"List-Id": "<digest.lists.example.org>", "Precedence": "list"})
    append(dovecot, mailbox, [enquiry, out_of_office, newsletter, BOUNCE])
    with running_worker(engine), watching(account_for(dovecot, mailbox), settings, broker):
        wait_for(lambda: messages(engine) == 4, timeout=15)
    with engine.connect() as c:
        rows = {r.external_id: r for r in c.execute(select(MESSAGE))}
    assert tickets(engine) == 1
    ticket_id = rows["orig@x.org"].ticket_id
    assert (rows["ooo@x.org"].kind, rows["ooo@x.org"].ticket_id) == ("automated", ticket_id)
    assert rows["news@x.org"].automated_kind == "list"
    assert rows["news@x.org"].ticket_id is None
    bounce = rows["bounce-1@mx.example.net"]
    assert bounce.automated_kind == "bounce"
    assert bounce.ticket_id == ticket_id  # it returned the enquiry's message
    assert bounce.report["recipient"] == "gone@nowhere.example"
    assert bounce.report["status"] == "5.1.1"


def test_processed_mail_is_moved_only_once_its_ticket_exists(dovecot, mailbox, settings, broker, engine: Engine, running_worker, tmp_path: Path) -> None:  # noqa: ANN001
    import threading

    from intake.imap import ProcessedMover
    from intake.state import AdapterHealth, ProcessedLog

    settings = settings.model_copy(update={"imap_processed_action": "move"})
    account = account_for(dovecot, mailbox)
    client = imap_client(dovecot, mailbox)
    client.create_folder("Processed")
    client.logout()
    append(dovecot, mailbox, [make_email(message_id="<mv@x.org>")])
    stop = threading.Event()
    log = ProcessedLog(broker.client, settings.redis_namespace)
    mover = ProcessedMover(account, log, AdapterHealth(broker.client, settings.redis_namespace), "move", "", "Processed", stop, interval=0.2)
    thread = threading.Thread(target=mover.run, daemon=True)
    thread.start()
    try:
        time.sleep(1.0)  # the mover has looked several times: no ticket yet, so nothing moves
        assert _folder_size(dovecot, mailbox, "Processed") == 0
        with running_worker(engine, settings), watching(account, settings, broker):  # the worker's after-store hook tells the mover
            wait_for(lambda: _folder_size(dovecot, mailbox, "Processed") == 1, timeout=15)
            assert tickets(engine) == 1
            assert _folder_size(dovecot, mailbox, "INBOX") == 0
            with engine.connect() as c:
                stored_source = c.execute(select(MESSAGE.c.source)).scalar_one()
            uidvalidity = imap_client(dovecot, mailbox).select_folder("INBOX", readonly=True)[b"UIDVALIDITY"]
            assert parse_source(stored_source) == (account.name, "INBOX", uidvalidity, 1)
    finally:
        stop.set()
        thread.join(timeout=10)


def test_killed_adapter_restarted_mid_batch_loses_and_duplicates_nothing(dovecot, mailbox, tmp_path: Path, redis_url: str, namespace: str, database_url: str, model_dir: Path) -> None:
    user, password = mailbox
    append(dovecot, mailbox, [make_email(message_id=f"<k{i}@x.org>", subject=f"Kill test {i}") for i in range(120)])
    env = cli_env(data_dir=tmp_path / "data", redis_url=redis_url, redis_namespace=namespace, database_url=database_url,
                  model_dir=model_dir, log_level="WARNING", imap_host="127.0.0.1", imap_port=dovecot.port, imap_user=user,
                  imap_password=password, imap_ssl="false", imap_batch_size=5, imap_overlap=7)
    import redis

    client = redis.Redis.from_url(redis_url)
    adapter = start_cli(["intake", "imap"], env)
    checkpoints = RedisCheckpointStore(client, namespace)
    wait_for(lambda: (c := checkpoints.get("imap", f"{user}@127.0.0.1", "INBOX")) is not None and c.last_uid >= 30, timeout=60)
    adapter.send_signal(signal.SIGKILL)
    adapter.wait(timeout=10)
    assert checkpoints.get("imap", f"{user}@127.0.0.1", "INBOX").last_uid < 120, "the kill must land mid-way"
    adapter = start_cli(["intake", "imap"], env)
    try:
        wait_for(lambda: checkpoints.get("imap", f"{user}@127.0.0.1", "INBOX").last_uid == 120, timeout=60)
    finally:
        adapter.send_signal(signal.SIGTERM)
        adapter.wait(timeout=30)
    run_cli(["worker", "--until-idle"], env, timeout=300)
    report = json.loads(run_cli(["report", "--json"], env).stdout)
    assert (report["tickets"], report["messages"], report["duplicates"]) == (120, 120, 0)
    client.close()


def _folder_size(dovecot, mailbox, folder: str) -> int:  # noqa: ANN001
    client = imap_client(dovecot, mailbox)
    try:
        return int(client.select_folder(folder, readonly=True)[b"EXISTS"])
    finally:
        client.logout()


BOUNCE = b"""From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: helpdesk@osds.example
Subject: Undelivered Mail Returned to Sender
Date: Mon, 02 Nov 2026 10:00:00 +0000
Message-ID: <bounce-1@mx.example.net>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="BOUND"

--BOUND
Content-Type: text/plain

This is the mail system. Your message could not be delivered to gone@nowhere.example.

--BOUND
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; gone@nowhere.example
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 user unknown

--BOUND
Content-Type: text/rfc822-headers

From: Ana <ana@hacienda.gob.mx>
Subject: Validation errors in our tender data
Message-ID: <orig@x.org>

--BOUND--
"""


def test_tricky_corpus_through_dovecot_into_the_database(dovecot, mailbox, settings, broker, engine: Engine, running_worker) -> None:  # noqa: ANN001
    """Every message of tests/data/imap-corpus: APPENDed, fetched over IMAP, parsed, classified, stored — then checked."""
    from tests.intake.corpus_checks import CORPUS, Seen, manifest, problems

    settings = settings.model_copy(update={"mail_from": "helpdesk@osds.example"})
    entries = manifest()
    append(dovecot, mailbox, [(CORPUS / e["file"]).read_bytes() for e in entries])
    with running_worker(engine, settings), watching(account_for(dovecot, mailbox), settings, broker, batch_size=25):
        wait_for(lambda: messages(engine) + count(engine, QUARANTINE) >= len(entries), timeout=60)
        wait_until_drained(broker)
    with engine.connect() as c:
        rows = {parse_source(r.source)[3]: r for r in c.execute(select(MESSAGE, TICKET.c.language.label("ticket_language"))
                                                             .outerjoin(TICKET, TICKET.c.id == MESSAGE.c.ticket_id))}
    failures = {}
    for uid, entry in enumerate(entries, start=1):
        row = rows.get(uid)
        if row is None:
            failures[entry["file"]] = ["not stored"]
            continue
        seen = Seen(row.automated_kind, row.text, row.new_text if row.new_text is not None else row.text,
                    row.attachments or [], row.report, row.language or row.ticket_language)
        found = problems(entry, seen)
        if found:
            failures[entry["file"]] = found
    assert failures == {}
    robots = sum(1 for e in entries if e["kind"] not in ("enquiry", "reply"))
    assert count(engine, MESSAGE, MESSAGE.c.kind == "automated") == robots


def test_xoauth2_login_through_the_token_command(dovecot, mailbox, settings, broker, engine: Engine, running_worker, tmp_path: Path) -> None:  # noqa: ANN001
    import dataclasses

    user, _ = mailbox
    token_file = tmp_path / "token"
    token_file.write_text(dovecot.oauth2_token(user) + "\n")
    command = tmp_path / "token-provider"
    command.write_text(f"#!/bin/sh\ncat {token_file}\n")
    command.chmod(0o755)
    account = dataclasses.replace(account_for(dovecot, mailbox), password=None, oauth2_token_command=str(command))
    append(dovecot, mailbox, [make_email(message_id="<oauth@x.org>")])
    with running_worker(engine), watching(account, settings, broker):
        wait_for(lambda: tickets(engine) == 1, timeout=15)


def test_a_failing_token_command_is_reported_and_retried(dovecot, mailbox, settings, broker, tmp_path: Path) -> None:  # noqa: ANN001
    import dataclasses

    command = tmp_path / "broken-provider"
    command.write_text("#!/bin/sh\necho 'refresh token expired' >&2\nexit 3\n")
    command.chmod(0o755)
    secret = "s3cr3t-client-value-42"
    account = dataclasses.replace(account_for(dovecot, mailbox), password=None,
                                  oauth2_token_command=f"{command} --client-id=desk --client-secret={secret}")
    with watching(account, settings, broker) as watcher:
        def last_error() -> str:
            return watcher.health.read_all().get(f"imap:{watcher.name}", {}).get("last_error", "")

        wait_for(lambda: "OAuth2 token command" in last_error(), timeout=15)
    # the error names the program and its exit status, never its arguments (a client secret) or its output
    assert "broken-provider [redacted] failed with exit status 3" in last_error()
    assert secret not in last_error()
    assert "client-id" not in last_error()
    assert "refresh token" not in last_error()
