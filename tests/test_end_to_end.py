"""End to end over real processes: `helpdesk import`, then worker processes, on real Redis and each database."""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from storage.db import create_db_engine, reading
from storage.intake_store import MESSAGE, QUARANTINE, TICKET
from tests.cli import cli_env, run_cli, start_cli
from tests.factories import make_email

pytestmark = pytest.mark.slow

SENDERS = ["a@finance.gov.uk", "b@hacienda.gob.mx", "c@opengovwatch.org", "d@procuresoft.com", "e@ucl.ac.uk", "f@gmail.com"]
SUBJECTS = ["Validation errors in tender data", "Como publicar os dados", "Question sur la liste de codes", "Webinar registration"]


def build_mailbox(folder: Path, originals: int = 700, replies: int = 100, repeats: int = 200, seed: int = 7) -> dict[str, str]:
    """Write originals, replies (each to an earlier original) and byte-exact repeats; return reply → parent ids."""
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    files: list[bytes] = []
    parent_of: dict[str, str] = {}
    for i in range(originals):
        files.append(make_email(sender=SENDERS[i % len(SENDERS)], subject=f"{SUBJECTS[i % 4]} #{i}",
                                body=f"Enquiry number {i}: we need help with our data, field tender/value.", message_id=f"<o{i}@e2e>"))
        if i % 7 == 6 and len(parent_of) < replies:
            parent = rng.randrange(i + 1)  # an earlier original, possibly the one just written
            parent_of[f"r{i}@e2e"] = f"o{parent}@e2e"
            files.append(make_email(sender=SENDERS[parent % len(SENDERS)], subject=f"Re: {SUBJECTS[parent % 4]} #{parent}",
                                    body=f"Thanks, more detail on enquiry {parent}.", message_id=f"<r{i}@e2e>",
                                    in_reply_to=f"<o{parent}@e2e>", references=f"<o{parent}@e2e>"))
    assert len(parent_of) == replies
    for _ in range(repeats):
        files.append(rng.choice(files[: len(files) // 2 + 1]))
    for n, raw in enumerate(files):
        (folder / f"{n:05d}.eml").write_bytes(raw)
    return parent_of


@pytest.fixture
def make_env(tmp_path: Path, redis_url: str, namespace: str, database_url: str, model_dir: Path):  # noqa: ANN201
    """The environment of a `helpdesk` process of this test: its Redis namespace, its database, shared models."""

    def make(**extra: object) -> dict[str, str]:
        return cli_env(data_dir=tmp_path / "data", redis_url=redis_url, redis_namespace=namespace, model_dir=model_dir,
                       database_url=database_url, worker_threads=4, log_level="WARNING", **extra)

    return make


def _check_exact(database_url: str, parent_of: dict[str, str], originals: int) -> None:
    engine = create_db_engine(database_url)
    with engine.connect() as c:
        tickets = c.execute(select(TICKET.c.id)).all()
        messages = {r.external_id: r for r in c.execute(select(MESSAGE.c.external_id, MESSAGE.c.ticket_id, MESSAGE.c.kind))}
    engine.dispose()
    assert len(tickets) == originals
    assert len(messages) == originals + len(parent_of)
    for reply, parent in parent_of.items():
        assert messages[reply].kind == "reply", reply
        assert messages[reply].ticket_id == messages[parent].ticket_id, (reply, parent)


def test_thousand_messages_two_workers_exact(tmp_path: Path, redis_url: str, namespace: str, database_url: str, make_env) -> None:  # noqa: ANN001
    # Given 1,000 e-mails: 700 enquiries, 100 replies to earlier ones, 200 exact repeats
    parent_of = build_mailbox(tmp_path / "mail")
    env = make_env()
    run_cli(["import", str(tmp_path / "mail")], env)
    # When two worker processes drain the queue together
    workers = [start_cli(["worker", "--until-idle"], env) for _ in range(2)]
    for w in workers:
        out, errors = w.communicate(timeout=600)
        assert w.returncode == 0, errors
    # Then exactly the expected tickets and messages exist, every reply on its parent's ticket
    _check_exact(database_url, parent_of, 700)
    report = json.loads(run_cli(["report", "--json"], env).stdout)
    assert (report["tickets"], report["messages"], report["duplicates"], report["threaded"]) == (700, 800, 200, 100)
    assert report["quarantined"] == 0


def test_worker_killed_mid_flight_loses_and_duplicates_nothing(tmp_path: Path, redis_url: str, namespace: str, database_url: str, make_env) -> None:  # noqa: ANN001
    # Given 1,000 e-mails queued and a worker that is killed (SIGKILL) part-way through (a batch commits 50 at once:
    # the mailbox is large enough for the kill to land mid-way)
    parent_of = build_mailbox(tmp_path / "mail")
    env = make_env(heartbeat_timeout_seconds=3)
    run_cli(["db", "upgrade"], env)
    run_cli(["import", str(tmp_path / "mail")], env)
    victim = start_cli(["worker"], env)
    engine = create_db_engine(database_url)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        # a reading connection (deferred BEGIN): a write transaction here would queue behind the worker's
        # batches on SQLite's lock and could first look only when the worker is done
        with reading(engine) as c:
            stored = len(c.execute(select(MESSAGE.c.id)).all())
        if stored >= 1:  # the first batch committed: kill at once, with most of the mail still queued
            break
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    with reading(engine) as c:
        committed = len(c.execute(select(MESSAGE.c.id)).all())
    engine.dispose()
    assert 1 <= stored <= committed < 800, "the kill must land mid-way for this test to mean anything"
    # When a new worker starts (it recovers what the dead one held once its heartbeat has expired)
    run_cli(["worker", "--until-idle"], env, timeout=300)
    # Then the result is exact
    _check_exact(database_url, parent_of, 700)


def test_bad_input_never_stops_the_line(tmp_path: Path, redis_url: str, namespace: str, database_url: str, make_env) -> None:  # noqa: ANN001
    mail = tmp_path / "mail"
    mail.mkdir()
    (mail / "1-truncated.eml").write_bytes(
        b"From: a@b.org\r\nSubject: truncated\r\nMessage-ID: <t@b.org>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="XYZ"\r\n\r\n--XYZ\r\nContent-Type: text/plain\r\n\r\nFirst part only.\r\n--XYZ\r\nContent-Type: application/pdf\r\n\r\nJVBER'
    )
    (mail / "2-charset.eml").write_bytes(
        b"From: a@b.org\r\nSubject: charset\r\nMessage-ID: <c@b.org>\r\nContent-Type: text/plain; charset=x-bogus\r\n\r\nCaf\xe9 \xff data question"
    )
    (mail / "3-huge.eml").write_bytes(make_email(message_id="<huge@b.org>", body="data " * (1024 * 1024)))  # 5 MB body
    (mail / "4-no-id.eml").write_bytes(make_email(message_id=None, subject="No Message-ID here"))
    (mail / "5-garbage.eml").write_bytes(bytes(range(256)) * 4)
    (mail / "6-empty.eml").write_bytes(b"")
    (mail / "7-fine.eml").write_bytes(make_email(message_id="<fine@b.org>", subject="A normal question after the bad ones"))
    env = make_env()
    imported = run_cli(["import", str(mail)], env)
    assert "queued 5" in imported.stdout
    assert "quarantined 2" in imported.stdout
    run_cli(["worker", "--until-idle"], env)
    engine = create_db_engine(database_url)
    with engine.connect() as c:
        subjects = {r.subject for r in c.execute(select(TICKET.c.subject))}
        messages = {r.external_id: r for r in c.execute(select(MESSAGE))}
        quarantined = {r.reason for r in c.execute(select(QUARANTINE))}
    engine.dispose()
    assert subjects == {"truncated", "charset", "Validation errors in our tender data", "No Message-ID here",
                        "A normal question after the bad ones"}
    assert messages["huge@b.org"].truncated
    assert len(messages["huge@b.org"].text) == 200_000
    assert any(k.startswith("sha256:") for k in messages)
    assert quarantined == {"not_an_email", "empty"}


def test_undecodable_payload_is_dead_lettered_once_with_its_reason(tmp_path: Path, redis_url: str, namespace: str, database_url: str, make_env) -> None:  # noqa: ANN001
    import dramatiq

    from config.broker import close_broker, create_broker
    from config.settings import load_settings
    from intake.queue import INTAKE_QUEUE, PROCESS_ACTOR

    settings = load_settings(environ={}, redis_url=redis_url, redis_namespace=namespace, database_url=database_url)
    broker = create_broker(settings)
    broker.enqueue(dramatiq.Message(queue_name=INTAKE_QUEUE, actor_name=PROCESS_ACTOR, args=("{not json",), kwargs={}, options={}))
    env = make_env()
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "a.eml").write_bytes(make_email(message_id="<after@b.org>"))
    run_cli(["import", str(tmp_path / "ok")], env)
    run_cli(["worker", "--until-idle"], env)
    assert broker.client.zcard(f"{namespace}:{INTAKE_QUEUE}.XQ") == 1
    close_broker(broker)
    engine = create_db_engine(database_url)
    with engine.connect() as c:
        [letter] = c.execute(select(QUARANTINE)).all()
        tickets = c.execute(select(TICKET)).all()
    engine.dispose()
    assert letter.kind == "dead_letter"
    assert letter.reason == "MessageDecodeError"
    assert "Traceback" in letter.detail
    assert letter.payload["args"] == ["{not json"]
    assert letter.payload["options"].get("retries", 0) == 0  # invalid input is not retried
    assert len(tickets) == 1  # the worker kept going
