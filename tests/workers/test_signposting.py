"""Documentation signposting in the worker: suggestions stored per new ticket, shown on the card, sent in the
acknowledgement; weak matches counted as possible documentation gaps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from config.settings import Settings
from storage.intake_store import EVENT, TICKET
from storage.queries import summary
from tests.factories import make_email
from tests.intake.imap_helpers import ingestor_for, wait_for
from tests.servers.smtp import SmtpServer
from workers.outbound import cards
from workers.intake.docs_index import build_index, save_index

DOCS = Path(__file__).resolve().parents[2] / "config" / "docs"


def _tickets(engine: Engine) -> list[Any]:
    with engine.connect() as c:
        return c.execute(select(TICKET).order_by(TICKET.c.id)).all()


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_new_tickets_get_suggestions_or_count_as_gaps(
    settings: Settings, running_worker, engine: Engine, broker, smtp: SmtpServer,  # noqa: ANN001
) -> None:
    # Given a documentation index, and acknowledgements sent to the local SMTP server
    save_index(build_index(DOCS), settings.resolved_docs_index)
    mail = settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": smtp.port, "smtp_security": "none",
                                       "mail_from": "helpdesk@osds.example", "acknowledge": True})
    with running_worker(engine, mail) as services:
        # When one enquiry the documentation answers and one it does not arrive
        ingest = ingestor_for(mail, broker).ingest
        ingest(make_email(sender="Ana Gómez <ana@hacienda.gob.mx>", message_id="<s1@hacienda.gob.mx>",
                          subject="How do we get started publishing data?",
                          body="We are a ministry new to OSDS. Where do we start publishing our first dataset?"), "test")
        ingest(make_email(sender="Tom <tom@press.example>", message_id="<s2@press.example>", subject="Parking at your office",
                          body="Is there visitor parking near your office building on Friday afternoon?"), "test")
        wait_for(lambda: len(_tickets(engine)) == 2, timeout=30)
        [ack_ana, ack_tom] = sorted(smtp.wait_for(2), key=lambda r: r.rcpt_tos[0])
        by_subject = {t.subject: t for t in _tickets(engine)}
        helped, gap = by_subject["How do we get started publishing data?"], by_subject["Parking at your office"]
        _, blocks = cards.card(helped, services.operations)
    # Then the answered one has one to three suggestions and is no gap
    assert 1 <= len(helped.suggestions) <= 3
    assert helped.docs_gap is False
    top = helped.suggestions[0]
    assert top["url"].startswith("https://standard.osds.example/")
    assert top["title"]
    assert top["score"] > 0
    # And the other is a gap without suggestions
    assert gap.docs_gap is True
    assert gap.suggestions == []
    # And the gap is recorded once and counted in the summary
    with engine.connect() as c:
        gaps = c.execute(select(EVENT.c.ticket_id).where(EVENT.c.kind == "docs_gap")).scalars().all()
        counted = summary(c)
    assert gaps == [gap.id]
    assert counted["docs_gaps"] == 1
    assert counted["docs_gaps_by_type"] == {gap.type: 1}
    # And the card and the acknowledgement carry the suggestions; the gap's acknowledgement none
    assert top["url"] in str(blocks), "the card links the suggestions"
    ana_body = ack_ana.message.get_content()
    assert top["url"] in ana_body, "the acknowledgement carries the suggestions"
    assert f"HD-{helped.id}" in ana_body, "the acknowledgement carries the number"
    assert "https://" not in ack_tom.message.get_content(), "no weak suggestions sent"
