"""Acknowledgements cannot be aimed at third parties: limits per mailbox, domain and desk; no forged or own senders;
no untrusted display name echoed. Real SMTP server (aiosmtpd), real worker."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, select

from config.settings import Settings
from storage.intake_store import EVENT, TICKET
from tests.factories import make_email
from tests.intake.imap_helpers import ingestor_for, wait_for
from tests.servers.smtp import SmtpServer
from tests.waiting import wait_until_drained

pytestmark = pytest.mark.slow


@pytest.fixture
def ack_settings(mail_settings: Settings) -> Settings:
    return mail_settings.model_copy(update={
        "acknowledge": True, "acknowledgement_window_hours": 24, "ack_limit_per_address_hour": 2, "ack_limit_per_domain_hour": 4,
    })


def _events(engine: Engine, kind: str) -> list[Any]:
    with engine.connect() as c:
        return c.execute(select(EVENT).where(EVENT.c.kind == kind)).all()


def _tickets(engine: Engine) -> list[Any]:
    with engine.connect() as c:
        return c.execute(select(TICKET)).all()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_plus_addresses_and_one_domain_cannot_flood_a_mailbox(
    ack_settings: Settings, running_worker, engine: Engine, broker, smtp: SmtpServer,  # noqa: ANN001
) -> None:
    with running_worker(engine, ack_settings):
        ingest = ingestor_for(ack_settings, broker).ingest
        # Given 12 enquiries from plus-addresses of one victim, and 6 from colleagues at one other domain
        for n in range(12):
            ingest(make_email(sender=f"victim+{n}@example.net", message_id=f"<v{n}@attacker.example>", subject=f"Question {n}",
                              body="How do I publish my data?"), "test")
        for n in range(6):
            ingest(make_email(sender=f"person{n}@ministry.example", message_id=f"<m{n}@ministry.example>", subject=f"Query {n}",
                              body="Which codelist do we use?"), "test")
        # When the worker has processed all of them
        wait_for(lambda: len(_tickets(engine)) == 18
                 and len(_events(engine, "acknowledged")) + len(_events(engine, "acknowledgement_withheld")) == 18, timeout=60)
        wait_until_drained(broker)
    # Then the victim's mailbox got 2 acknowledgements (the hourly limit per mailbox), the domain 4
    recipients = [r.rcpt_tos[0] for r in smtp.received]
    assert sum(r.startswith("victim+") for r in recipients) == 2
    assert sum(r.endswith("@ministry.example") for r in recipients) == 4
    # And each withheld acknowledgement names the limit it hit
    reasons = {e.data["reason"].split(" in the last hour")[0].split(" ", 2)[-1] for e in _events(engine, "acknowledgement_withheld")}
    assert reasons == {"to victim@example.net", "to ministry.example"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_forged_own_and_oddly_named_senders(
    ack_settings: Settings, running_worker, engine: Engine, broker, smtp: SmtpServer,  # noqa: ANN001
) -> None:
    with running_worker(engine, ack_settings):
        ingest = ingestor_for(ack_settings, broker).ingest
        # Given a sender whose domain's DMARC failed at our mail server: perhaps forged
        ingest(make_email(sender="ceo@bank.example", message_id="<f1@bank.example>", subject="Urgent",
                          headers={"Authentication-Results": "mx.osds.example; spf=softfail smtp.mailfrom=bank.example; dmarc=fail header.from=bank.example"}), "test")
        # And our own plus-address: our own mail
        ingest(make_email(sender="helpdesk+hd-999@osds.example", message_id="<o1@elsewhere.example>", subject="Loop?"), "test")
        # And a display name written to be echoed as a lure
        ingest(make_email(sender='"WIN-$500-at-https://evil.example/claim" <win@lure.example>', message_id="<w1@lure.example>",
                          subject="Hello"), "test")
        # When the worker has processed all three
        smtp.wait_for(1)
        wait_for(lambda: len(_events(engine, "acknowledgement_withheld")) == 1, timeout=30)
        wait_until_drained(broker)
    # Then only the lure's sender is acknowledged, without its display name echoed
    assert [r.rcpt_tos[0] for r in smtp.received] == ["win@lure.example"]
    body = smtp.received[0].message.get_content()
    assert "evil.example" not in body
    assert "WIN" not in body
    # And the perhaps-forged sender's acknowledgement is withheld, naming the failed check
    [withheld] = _events(engine, "acknowledgement_withheld")
    assert "dmarc=fail" in withheld.data["reason"] or "spf=softfail" in withheld.data["reason"]
    # And our own address opens no ticket
    assert len(_tickets(engine)) == 2, "our own address opens no ticket"
