"""Enquirers write: the public form and POST /api/v1/enquiries become tickets on the web channel, once per client key."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import select

from intake.message import InboundMessage
from intake.queue import INTAKE_QUEUE
from storage.intake_store import MESSAGE, TICKET
from tests.dashboard.conftest import Site, csrf

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

GOOD = {"name": "Lucía Pérez", "email": "lucia@hacienda.gob.mx", "subject": "Publicar contratos en OCDS",
        "message": "Hola, ¿cómo publicamos nuestros contratos en el estándar?", "organisation": "Secretaría de Hacienda"}


def _queued(site: Site) -> list[InboundMessage]:
    broker = site.runtime.broker
    raw = broker.client.hvals(f"{site.runtime.settings.redis_namespace}:{INTAKE_QUEUE}.msgs")
    return [InboundMessage.from_json(json.loads(r)["args"][0]) for r in raw]


def test_given_a_valid_enquiry_when_posted_to_the_api_then_202_with_a_reference_and_it_is_queued_on_the_web_channel(site: Site) -> None:
    response = site.client().post("/api/v1/enquiries", json=GOOD, headers={"Idempotency-Key": "abc-123"})

    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued"
    assert body["reference"].startswith("WEB-")
    [message] = _queued(site)
    assert (message.channel, message.sender.address, message.subject) == ("web", "lucia@hacienda.gob.mx", GOOD["subject"])
    assert message.identities == {"email": "lucia@hacienda.gob.mx"}
    assert "Secretaría de Hacienda" in message.text


def test_given_the_same_idempotency_key_twice_then_the_same_message_identity_is_queued(site: Site) -> None:
    client = site.client()
    first = client.post("/api/v1/enquiries", json=GOOD, headers={"Idempotency-Key": "same"})
    second = client.post("/api/v1/enquiries", json=GOOD, headers={"Idempotency-Key": "same"})
    other = client.post("/api/v1/enquiries", json=GOOD, headers={"Idempotency-Key": "other"})

    assert first.json()["reference"] == second.json()["reference"] != other.json()["reference"]
    assert len({m.external_id for m in _queued(site)}) == 2  # the pipeline stores one message per (channel, external id)


@pytest.mark.parametrize(("body", "headers", "status", "says"), [
    (b"{not json", {"content-type": "application/json"}, 400, "not valid JSON"),
    (b"[1, 2]", {"content-type": "application/json"}, 400, "JSON object"),
    (b"name=x", {"content-type": "application/x-www-form-urlencoded"}, 415, "JSON"),
    (json.dumps({**GOOD, "email": "not-an-address"}).encode(), {"content-type": "application/json"}, 422, "e-mail"),
    (json.dumps({**GOOD, "message": ""}).encode(), {"content-type": "application/json"}, 422, "required"),
    (json.dumps({**GOOD, "admin": True}).encode(), {"content-type": "application/json"}, 422, "unknown field"),
    (json.dumps({**GOOD, "subject": "x" * 301}).encode(), {"content-type": "application/json"}, 422, "at most 300"),
    (json.dumps(GOOD).encode(), {"content-type": "application/json", "idempotency-key": "x" * 201}, 400, "Idempotency-Key"),
    (b"{" + b" " * 70_000 + b"}", {"content-type": "application/json"}, 413, "at most"),
])
def test_given_bad_input_then_a_4xx_with_a_clear_message_and_nothing_queued(site: Site, body: bytes, headers: dict, status: int, says: str) -> None:
    response = site.client().post("/api/v1/enquiries", content=body, headers=headers)

    assert response.status_code == status
    assert says in response.json()["error"] + json.dumps(response.json().get("fields", {}))
    assert _queued(site) == []


def test_given_a_flood_from_one_address_then_429_with_retry_after(site: Site) -> None:
    client = site.client()
    limit = site.runtime.settings.web_enquiries_per_hour
    codes = [client.post("/api/v1/enquiries", json={**GOOD, "subject": f"n{i}"}).status_code for i in range(limit + 1)]

    assert codes[:limit] == [202] * limit
    assert codes[-1] == 429


def test_given_a_huge_form_body_then_413(site: Site) -> None:
    response = site.client().post("/enquiry", content=b"a=" + b"x" * 300_000, headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413


def test_the_form_speaks_the_browsers_language_and_thanks_with_a_reference(site: Site) -> None:
    client = site.client(headers={"Accept-Language": "fr-CA,fr;q=0.9,en;q=0.5"})
    page = client.get("/enquiry")
    assert page.status_code == 200
    assert "Votre question" in page.text
    assert 'lang="fr"' in page.text
    assert "Su consulta" in site.client(headers={"Accept-Language": "es"}).get("/enquiry").text
    assert "A sua pergunta" in site.client(headers={"Accept-Language": "pt-BR"}).get("/enquiry").text
    assert "Your question" in site.client(headers={"Accept-Language": "de"}).get("/enquiry").text

    done = client.post("/enquiry", data={**GOOD, "csrf_token": csrf(client, "/enquiry"), "submission": "s-1", "website": ""})

    assert done.status_code == 200
    assert "WEB-" in done.text
    assert "Merci" in done.text
    assert [m.source for m in _queued(site)] == ["web:form"]


def test_given_a_filled_honeypot_or_no_csrf_token_then_nothing_is_queued(site: Site) -> None:
    client = site.client()
    robot = client.post("/enquiry", data={**GOOD, "csrf_token": csrf(client, "/enquiry"), "website": "http://spam.example"})
    forged = site.client().post("/enquiry", data={**GOOD, "csrf_token": "forged"})
    invalid = client.post("/enquiry", data={**GOOD, "email": "nope", "csrf_token": csrf(client, "/enquiry")})

    assert robot.status_code == 200
    assert forged.status_code == 403
    assert invalid.status_code == 422
    assert "not an e-mail address" in invalid.text
    assert 'value="Lucía Pérez"' in invalid.text
    assert _queued(site) == []


def test_given_an_enquiry_from_the_api_when_the_worker_runs_then_a_web_ticket_appears(site: Site, running_worker) -> None:  # noqa: ANN001
    response = site.client().post("/api/v1/enquiries", json=GOOD, headers={"Idempotency-Key": "e2e"})
    assert response.status_code == 202

    with running_worker(site.runtime.engine, site.runtime.settings):
        deadline = time.monotonic() + 30
        ticket = None
        while ticket is None and time.monotonic() < deadline:
            with site.runtime.engine.connect() as c:
                ticket = c.execute(select(TICKET).where(TICKET.c.channel == "web")).first()
            time.sleep(0.2)

    assert ticket is not None
    assert ticket.subject == GOOD["subject"]
    assert ticket.language == "es"
    with site.runtime.engine.connect() as c:
        assert c.execute(select(MESSAGE.c.sender_address).where(MESSAGE.c.ticket_id == ticket.id)).scalar() == "lucia@hacienda.gob.mx"


def test_given_a_web_ticket_then_its_replies_are_addressed_by_mail_to_the_enquirer(site: Site) -> None:
    from intake.web import parse, to_inbound
    from workers.services import build_services
    from workers.outbound.email_out import thread_of

    services = build_services(site.runtime.settings, site.runtime.broker, site.runtime.engine)
    ticket_id = services.pipeline.process(to_inbound(parse(GOOD), client_key="k", via="api"), "d-web").ticket_id

    thread = thread_of(site.runtime.engine, ticket_id)

    assert thread is not None
    assert (thread.to_address, thread.subject, thread.in_reply_to) == ("lucia@hacienda.gob.mx", GOOD["subject"], None)
