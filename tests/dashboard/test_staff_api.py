"""The staff JSON API with bearer tokens, every status code, and its OpenAPI description."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from storage import audit
from storage.credentials import CREDENTIAL, TOKEN, add_token, revoke_token
from storage.intake_store import TICKET
from tests.dashboard.conftest import Site, use_settings_for_commands

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _token(site: Site, who: str) -> dict[str, str]:
    token = f"hdt_test_{who}_0123456789"
    add_token(site.runtime.engine, who, token)
    return {"Authorization": f"Bearer {token}"}


def test_given_a_token_when_listing_and_reading_tickets_then_200_with_json(site: Site) -> None:
    ticket_id = site.open_ticket("api1@x", subject="API subject")
    client = site.client(headers=_token(site, "ana"))

    listing = client.get("/api/v1/tickets", params={"q": "API subject"})
    one = client.get(f"/api/v1/tickets/HD-{ticket_id}")

    assert listing.status_code == 200
    assert [t["number"] for t in listing.json()["tickets"]] == [f"HD-{ticket_id}"]
    assert one.status_code == 200
    assert one.json()["ticket"]["subject"] == "API subject"
    assert one.json()["messages"]
    assert [e["kind"] for e in one.json()["history"]][0] == "ticket_created"


def test_without_a_valid_token_then_401(site: Site) -> None:
    revoked = _token(site, "tom")
    revoke_token(site.runtime.engine, 1)
    assert site.client().get("/api/v1/tickets").status_code == 401
    assert site.client(headers={"Authorization": "Bearer nope"}).get("/api/v1/tickets").status_code == 401
    assert site.client(headers=revoked).get("/api/v1/tickets").status_code == 401
    assert site.client(headers={"Authorization": "Basic YWxhZGRpbjpvcGVu"}).get("/api/v1/tickets").status_code == 401


def test_bad_parameters_unknown_tickets_and_bodies_get_their_codes(site: Site) -> None:
    ticket_id = site.open_ticket("api2@x")
    client = site.client(headers=_token(site, "ana"))
    url = f"/api/v1/tickets/HD-{ticket_id}/actions"

    assert client.get("/api/v1/tickets", params={"limit": "0"}).status_code == 400
    assert client.get("/api/v1/tickets", params={"team": "x y"}).status_code == 400
    assert client.get("/api/v1/tickets/HD-99999").status_code == 404
    assert client.post(url, content=b"action=resolve", headers={"content-type": "text/plain"}).status_code == 415
    assert client.post(url, content=b"{", headers={"content-type": "application/json", "idempotency-key": "k"}).status_code == 400
    assert client.post(url, json={"action": "resolve"}).status_code == 400  # no Idempotency-Key
    assert client.post(url, json={"action": "explode"}, headers={"idempotency-key": "k"}).status_code == 400
    assert client.post(url, content=b"{" + b" " * 70_000 + b"}", headers={"content-type": "application/json"}).status_code == 413
    assert client.post("/api/v1/tickets/HD-99999/actions", json={"action": "resolve"}, headers={"idempotency-key": "k"}).status_code == 404
    assigned = client.post(url, json={"action": "assign", "member": "mallory"}, headers={"idempotency-key": "k2"})
    assert assigned.status_code == 422
    assert "not a member" in assigned.json()["detail"]


def test_given_a_member_token_when_resolving_twice_with_one_key_then_done_once(site: Site) -> None:
    ticket_id = site.open_ticket("api3@x")
    client = site.client(headers=_token(site, "ana"))
    url = f"/api/v1/tickets/HD-{ticket_id}/actions"

    first = client.post(url, json={"action": "resolve"}, headers={"idempotency-key": "r-1"})
    again = client.post(url, json={"action": "resolve"}, headers={"idempotency-key": "r-1"})

    assert (first.status_code, first.json()["status"]) == (200, "done")
    assert (again.status_code, again.json()["status"]) == (200, "unchanged")
    with site.runtime.engine.connect() as c:
        assert c.execute(select(TICKET.c.status).where(TICKET.c.id == ticket_id)).scalar() == "resolved"


def test_given_an_operator_token_then_reading_tickets_is_allowed_but_replying_is_403_and_audited(site: Site) -> None:
    ticket_id = site.open_ticket("api4@x")
    client = site.client(headers=_token(site, "olu"))

    refused = client.post(f"/api/v1/tickets/HD-{ticket_id}/actions", json={"action": "reply", "text": "hi"}, headers={"idempotency-key": "x1"})

    assert client.get("/api/v1/tickets").status_code == 200
    assert refused.status_code == 403
    assert "may not reply" in refused.json()["error"]
    assert [(e.actor, e.action) for e in audit.entries(site.runtime.engine, outcome="refused")] == [("olu", "reply")]


def test_given_too_many_requests_then_429(site: Site, web_settings) -> None:  # noqa: ANN001
    headers = _token(site, "ana")
    client = site.client(headers=headers)
    codes = [client.get("/api/v1/tickets").status_code for _ in range(web_settings.web_api_requests_per_minute + 1)]
    assert codes[-1] == 429
    assert set(codes[:-1]) == {200}


def test_the_openapi_description_names_every_path_and_status(site: Site) -> None:
    doc = site.client().get("/api/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {"/api/v1/enquiries", "/api/v1/tickets", "/api/v1/tickets/{ref}", "/api/v1/tickets/{ref}/actions"}
    assert set(doc["paths"]["/api/v1/enquiries"]["post"]["responses"]) == {"202", "400", "413", "415", "422", "429", "503"}


def test_tokens_create_prints_a_token_once_and_stores_only_its_hash(site: Site, web_settings, monkeypatch) -> None:  # noqa: ANN001
    from ops.web_cli import tokens_app

    use_settings_for_commands(web_settings, monkeypatch)

    result = CliRunner().invoke(tokens_app, ["create", "ana", "--name", "reporting"])

    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("hdt_")
    with site.runtime.engine.connect() as c:
        stored = c.execute(select(TOKEN.c.token_hash, TOKEN.c.staff_key)).all()
        assert c.execute(select(CREDENTIAL)).first() is not None
    assert [s.staff_key for s in stored] == ["ana"]
    assert token not in stored[0].token_hash
    assert site.client(headers={"Authorization": f"Bearer {token}"}).get("/api/v1/tickets").status_code == 200
