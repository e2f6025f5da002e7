"""Written replies by e-mail over a real SMTP server (aiosmtpd), acknowledgements, canned replies, exactly-once sending."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from config.settings import Settings
from storage.intake_store import EVENT, MESSAGE, TICKET
from tests.cli import run_cli, settings_env, start_cli
from tests.factories import make_email
from tests.intake.imap_helpers import account_for, append, ingestor_for, wait_for, watching
from tests.servers.smtp import SmtpServer
from tests.waiting import wait_until_drained
from tests.workers.conftest import MAIL_FROM
from config.queues import enqueue_effect
from config.secrets import desk_secret
from workers.intake.conversation import TicketKeys
from workers.desk.operations import add_staff_message

pytestmark = pytest.mark.slow


def _tickets(engine: Engine) -> list[Any]:
    with engine.connect() as c:
        return c.execute(select(TICKET).order_by(TICKET.c.id)).all()


def _message(engine: Engine, message_id: int) -> Any:
    with engine.connect() as c:
        return c.execute(select(MESSAGE).where(MESSAGE.c.id == message_id)).first()


def _outbound(engine: Engine) -> list[Any]:
    with engine.connect() as c:
        return c.execute(select(MESSAGE).where(MESSAGE.c.direction == "out").order_by(MESSAGE.c.id)).all()


def _events(engine: Engine, kind: str) -> list[Any]:
    with engine.connect() as c:
        return c.execute(select(EVENT).where(EVENT.c.kind == kind)).all()


def _reply(engine: Engine, broker, ticket_id: int, text: str, key: str = "t:1") -> int:  # noqa: ANN001
    from storage.models import utcnow

    message_id, effect = add_staff_message(engine, ticket_id, text, utcnow(), author="priya", key=key, note=False)
    assert message_id is not None
    assert effect is not None
    enqueue_effect(broker, effect)
    return message_id


ENQUIRY = make_email(sender="Ana Gómez <ana@hacienda.gob.mx>", message_id="<q1@hacienda.gob.mx>",
                     references="<older@hacienda.gob.mx>", subject="Validation errors in our tender data")


def test_email_reply_is_threaded_with_exact_headers_and_sent_once(
    mail_settings: Settings, running_worker, engine: Engine, broker, smtp: SmtpServer,  # noqa: ANN001
) -> None:
    with running_worker(engine, mail_settings):
        # Given a ticket opened by an e-mail enquiry
        ingestor_for(mail_settings, broker).ingest(ENQUIRY, "test")
        wait_for(lambda: len(_tickets(engine)) == 1, timeout=20)
        [ticket] = _tickets(engine)
        # When a member replies, and the reply's effect is delivered a second time after it was sent
        message_id = _reply(engine, broker, ticket.id, "Hola Ana,\n\nthe tender/value field needs a currency.\n")
        [sent] = smtp.wait_for(1)
        wait_for(lambda: _message(engine, message_id).status == "sent", timeout=20)
        enqueue_effect(broker, f"reply:{message_id}")  # delivered again: done already, nothing more leaves
        wait_until_drained(broker)
    # Then one message left, threaded under the enquiry with exactly these headers
    assert len(smtp.received) == 1
    token = f"HD-{ticket.id}"
    key = TicketKeys(desk_secret(mail_settings)).key(ticket.id)
    headers = sent.header_lines()
    row = _message(engine, message_id)
    assert re.fullmatch(rf"hd-{ticket.id}\.[0-9a-f]{{16}}@helpdesk\.osds\.example", row.message_id)
    assert headers["From"] == "OSDS Helpdesk <helpdesk@osds.example>"
    assert headers["To"] == "Ana =?utf-8?q?G=C3=B3mez?= <ana@hacienda.gob.mx>"  # RFC 2047: only the word that needs it
    assert headers["Subject"] == f"Re: Validation errors in our tender data [{token}-{key}]"
    assert headers["Message-ID"] == f"<{row.message_id}>"
    assert headers["In-Reply-To"] == "<q1@hacienda.gob.mx>"
    assert headers["References"] == "<older@hacienda.gob.mx> <q1@hacienda.gob.mx>"
    assert headers["Reply-To"] == f"helpdesk+hd-{ticket.id}-{key}@osds.example"
    assert headers["X-Helpdesk-Ticket"] == token
    assert "Auto-Submitted" not in headers, "a person's reply is not automatic"
    assert sent.mail_from == MAIL_FROM
    assert sent.rcpt_tos == ("ana@hacienda.gob.mx",)
    assert sent.message.get_content().startswith("Hola Ana,")
    # And the reply is recorded as sent, and as the ticket's first response
    assert row.status == "sent"
    assert row.sent_at is not None
    assert row.error is None
    [after] = _tickets(engine)
    assert after.first_response_at is not None, "the first reply to the enquirer is the first response"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_refused_recipient_fails_visibly_and_is_no_first_response(
    mail_settings: Settings, running_worker, engine: Engine, broker, smtp: SmtpServer,  # noqa: ANN001
) -> None:
    smtp.refuse("ana@hacienda.gob.mx")
    with running_worker(engine, mail_settings):
        ingestor_for(mail_settings, broker).ingest(ENQUIRY, "test")
        wait_for(lambda: len(_tickets(engine)) == 1, timeout=20)
        message_id = _reply(engine, broker, _tickets(engine)[0].id, "An answer that bounces")
        wait_for(lambda: _message(engine, message_id).status == "failed", timeout=20)
    row = _message(engine, message_id)
    assert "SMTP" in row.error
    assert "ana@hacienda.gob.mx" in row.error
    assert smtp.received == []
    assert _tickets(engine)[0].first_response_at is None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_temporary_smtp_failure_is_retried_and_sent_once(
    mail_settings: Settings, running_worker, engine: Engine, broker, smtp: SmtpServer,  # noqa: ANN001
) -> None:
    # Given an SMTP server that greylists the first attempt
    smtp.tempfail(1)  # 451 before the content went over, so it certainly did not leave
    with running_worker(engine, mail_settings):
        ingestor_for(mail_settings, broker).ingest(ENQUIRY, "test")
        wait_for(lambda: len(_tickets(engine)) == 1, timeout=20)
        # When a member replies
        message_id = _reply(engine, broker, _tickets(engine)[0].id, "Sent on the second try")
        wait_for(lambda: _message(engine, message_id).status == "sent", timeout=30)
        wait_until_drained(broker)
    # Then the reply left once, on the second attempt, without an error
    assert len(smtp.received) == 1
    assert _message(engine, message_id).error is None
    from storage.models import Outbox

    with engine.connect() as c:
        row = c.execute(select(Outbox.__table__).where(Outbox.__table__.c.key == f"reply:{message_id}")).one()
    assert row.attempts == 2
    assert row.status == "done"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_acknowledgement_once_per_contact_per_window_never_to_robots(
    mail_settings: Settings, running_worker, engine: Engine, broker, smtp: SmtpServer,  # noqa: ANN001
) -> None:
    ack_settings = mail_settings.model_copy(update={"acknowledge": True, "acknowledgement_window_hours": 24})
    with running_worker(engine, ack_settings):
        # Given an enquiry that was acknowledged
        ingest = ingestor_for(ack_settings, broker).ingest
        ingest(ENQUIRY, "test")
        [ack] = smtp.wait_for(1)
        # When the same enquirer opens a second, unrelated ticket within the window (no second acknowledgement)
        ingest(make_email(sender="Ana Gómez <ana@hacienda.gob.mx>", message_id="<q2@hacienda.gob.mx>",
                          subject="Another question: codelists", body="Which codelist is used for procurementMethod?"), "test")
        # And an out-of-office answer to anything arrives (never acknowledged: no loop between two robots)
        ingest(make_email(sender="Bot <noreply@robots.example>", message_id="<auto@robots.example>", subject="Automatic reply: away",
                          body="I am out of the office until Monday.", headers={"Auto-Submitted": "auto-replied"}), "test")
        # And another enquirer writes (acknowledged)
        ingest(make_email(sender="Li Wei <li@mof.gov.example>", message_id="<q3@mof.gov.example>", subject="API access",
                          body="How do we get access to the registry API?"), "test")
        smtp.wait_for(2)
        wait_for(lambda: len(_tickets(engine)) == 3 and len(_events(engine, "acknowledged")) == 2, timeout=20)
        wait_until_drained(broker)
    # Then two acknowledgements left: one to each enquirer, none to the robot
    assert len(smtp.received) == 2
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == ["ana@hacienda.gob.mx", "li@mof.gov.example"]
    # And the first is marked automatic, threaded under the enquiry, and names the ticket
    first = _tickets(engine)[0]
    headers = ack.header_lines()
    assert headers["Auto-Submitted"] == "auto-replied"
    assert headers["Subject"] == f"We received your enquiry [HD-{first.id}]"
    assert headers["In-Reply-To"] == "<q1@hacienda.gob.mx>"
    body = ack.message.get_content()
    assert f"Your enquiry is HD-{first.id}" in body
    assert "Dear Ana," in body
    # And no acknowledgement counts as a response
    assert all(t.first_response_at is None for t in _tickets(engine)), "an acknowledgement is not a response"
    kinds = {(m.kind, m.status) for m in _outbound(engine)}
    assert kinds == {("acknowledgement", "sent")}


def _process_env(s: Settings, smtp: SmtpServer, **extra: object) -> dict[str, str]:
    return settings_env(s, smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_security="none", mail_from=MAIL_FROM, acknowledge="false", **extra)


def test_worker_killed_after_the_send_before_the_record_sends_once(
    mail_settings: Settings, engine: Engine, broker, smtp: SmtpServer, tmp_path: Path,  # noqa: ANN001
) -> None:
    env = _process_env(mail_settings, smtp, heartbeat_timeout_seconds=2, effect_lease_seconds=2)
    (tmp_path / "mail").mkdir()
    (tmp_path / "mail" / "q.eml").write_bytes(ENQUIRY)
    run_cli(["import", str(tmp_path / "mail")], env)
    run_cli(["worker", "--until-idle"], env, timeout=120)
    [ticket] = _tickets(engine)
    smtp.hold_next(30)  # the server takes the message, then keeps the sender waiting for its 250
    victim = start_cli(["worker"], env)
    try:
        run_cli(["reply", f"HD-{ticket.id}", "The answer, exactly once.", "--by", "priya"], env)
        smtp.wait_for(1, timeout=60)
        time.sleep(0.3)
        [row] = _outbound(engine)
        assert row.status == "sending", "sent, not yet recorded"
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
    time.sleep(2.5)  # the dead worker's heartbeat and its lease run out
    run_cli(["worker", "--until-idle"], env, timeout=120)
    assert len(smtp.received) == 1, "never sent twice where the channel cannot tell"
    [row] = _outbound(engine)
    assert row.status == "failed"
    assert row.error.startswith("unconfirmed")
    # staff checked with the enquirer: it did not arrive; they send it once more on purpose
    run_cli(["reply", "--resend", str(row.id)], env)
    run_cli(["worker", "--until-idle"], env, timeout=120)
    assert len(smtp.received) == 2
    assert _message(engine, row.id).status == "sent"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_reply_to_our_reply_threads_back_through_imap(
    mail_settings: Settings, running_worker, engine: Engine, broker, smtp: SmtpServer, dovecot, mailbox,  # noqa: ANN001
) -> None:
    account = account_for(dovecot, mailbox)
    with running_worker(engine, mail_settings), watching(account, mail_settings, broker):
        append(dovecot, mailbox, [ENQUIRY])
        wait_for(lambda: len(_tickets(engine)) == 1, timeout=30)
        [ticket] = _tickets(engine)
        _reply(engine, broker, ticket.id, "Please send us the release package.")
        [ours] = smtp.wait_for(1)
        # the enquirer's colleague answers our reply from her own client: a new subject, only the threading headers
        sent = ours.message
        answer = make_email(sender="Luis Pérez <luis@hacienda.gob.mx>", message_id="<a1@hacienda.gob.mx>", subject="Attached: package",
                            in_reply_to=sent["Message-ID"], references=f"{sent['References']} {sent['Message-ID']}",
                            body="Here is the package you asked for.")
        append(dovecot, mailbox, [answer])
        wait_for(lambda: len([m for m in _messages_of(engine, ticket.id) if m.direction == "in"]) == 2, timeout=30)
    assert len(_tickets(engine)) == 1
    came_back = [m for m in _messages_of(engine, ticket.id) if m.direction == "in"][-1]
    assert came_back.thread_rule == "references"
    assert sent["Message-ID"].strip("<>") in came_back.thread_reason


def _messages_of(engine: Engine, ticket_id: int) -> list[Any]:
    with engine.connect() as c:
        return c.execute(select(MESSAGE).where(MESSAGE.c.ticket_id == ticket_id).order_by(MESSAGE.c.id)).all()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_cli_canned_reply_note_and_held_replies(
    mail_settings: Settings, engine: Engine, smtp: SmtpServer, tmp_path: Path,  # noqa: ANN001
) -> None:
    no_smtp = settings_env(mail_settings, acknowledge="false")
    env = _process_env(mail_settings, smtp)
    (tmp_path / "mail").mkdir()
    (tmp_path / "mail" / "q.eml").write_bytes(make_email(sender="Ana Gómez <ana@hacienda.gob.mx>", message_id="<c1@hacienda.gob.mx>",
                                                           subject="Consulta sobre validación",
                                                           body="Hola, el validador muestra errores en tender/value. ¿Nos ayudan?"))
    run_cli(["import", str(tmp_path / "mail")], no_smtp)
    run_cli(["worker", "--until-idle"], no_smtp, timeout=120)
    [ticket] = _tickets(engine)
    listed = run_cli(["reply", "--list-canned"], no_smtp).stdout
    assert "more_information" in listed
    run_cli(["reply", f"HD-{ticket.id}", "Checked the file: currency missing.", "--by", "priya", "--note"], no_smtp)
    run_cli(["reply", f"HD-{ticket.id}", "--canned", "more_information", "--by", "priya"], no_smtp)
    run_cli(["worker", "--until-idle"], no_smtp, timeout=120)  # no SMTP configured: the reply is held, not lost
    note, held = _outbound(engine)
    assert note.kind == "note"
    assert note.status is None
    assert held.status == "queued"
    assert smtp.received == []
    assert held.text.startswith("Estimado/a Ana:"), "filled in, in the enquirer's language"
    assert "Priya Nair, El equipo" in held.text, "filled in, in the enquirer's language"
    run_cli(["reply", "--send-queued"], env)
    run_cli(["worker", "--until-idle"], env, timeout=120)
    [sent] = smtp.wait_for(1)
    assert sent.message.get_content().replace("\r\n", "\n").strip() == held.text.strip()
    assert _message(engine, held.id).status == "sent"
    assert _message(engine, note.id).status is None
    with pytest.raises(AssertionError, match="no canned reply"):
        run_cli(["reply", f"HD-{ticket.id}", "--canned", "nonsense", "--by", "priya"], env)
