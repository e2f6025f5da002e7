"""Signing in to the dashboard: passwords set from the command line, sessions, CSRF, rate limits, headers."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from config.settings import Settings
from ops.runtime import Runtime
from storage import audit
from storage.credentials import CREDENTIAL
from tests.dashboard.conftest import PASSWORD, Site, csrf, use_settings_for_commands

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_given_the_command_when_a_password_is_set_then_only_its_argon2_hash_is_stored(web_settings: Settings, monkeypatch) -> None:  # noqa: ANN001
    from ops.web_cli import staff_app

    use_settings_for_commands(web_settings, monkeypatch)

    done = CliRunner().invoke(staff_app, ["set-password", "ana", "--password-stdin"], input="a long enough password\n")
    short = CliRunner().invoke(staff_app, ["set-password", "tom", "--password-stdin"], input="short\n")
    stranger = CliRunner().invoke(staff_app, ["set-password", "mallory", "--password-stdin"], input="a long enough password\n")

    assert done.exit_code == 0, done.output
    assert (short.exit_code, stranger.exit_code) == (2, 2)
    with Runtime(web_settings) as runtime, runtime.engine.connect() as c:
        rows = c.execute(select(CREDENTIAL.c.staff_key, CREDENTIAL.c.password_hash)).all()
    assert [r.staff_key for r in rows] == ["ana"]
    assert rows[0].password_hash.startswith("$argon2id$")
    assert "a long enough password" not in rows[0].password_hash


def test_given_a_password_when_signing_in_then_the_session_cookie_is_httponly_and_lax_and_signing_out_ends_it(site: Site) -> None:
    client = site.client()
    assert client.get("/tickets").headers["location"].startswith("/login")

    response = client.post("/login", data={"username": "ana", "password": PASSWORD, "csrf_token": csrf(client, "/login")})

    assert response.status_code == 303
    assert response.headers["location"] == "/tickets"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    stolen = dict(client.cookies)
    assert client.get("/tickets").status_code == 200
    token = csrf(client, "/tickets")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    replayed = site.client(cookies=stolen).get("/tickets")
    assert replayed.status_code == 303  # the old cookie no longer opens anything: the session ended on the server


def test_given_a_wrong_password_or_a_missing_csrf_token_then_nobody_is_signed_in(site: Site) -> None:
    client = site.client()
    token = csrf(client, "/login")

    wrong = client.post("/login", data={"username": "ana", "password": "not the password", "csrf_token": token})
    unknown = client.post("/login", data={"username": "mallory", "password": PASSWORD, "csrf_token": token})
    forged = site.client().post("/login", data={"username": "ana", "password": PASSWORD, "csrf_token": "x" * 43})

    assert (wrong.status_code, unknown.status_code, forged.status_code) == (401, 401, 403)
    assert "Wrong username or password." in wrong.text
    assert "Wrong username or password." in unknown.text
    assert client.get("/tickets").status_code == 303


def test_given_repeated_failures_when_the_limit_is_reached_then_even_the_right_password_waits(site: Site) -> None:
    client = site.client()
    token = csrf(client, "/login")
    limit = site.runtime.settings.web_login_attempts
    for _ in range(limit):
        assert client.post("/login", data={"username": "tom", "password": "guess", "csrf_token": token}).status_code == 401

    blocked = client.post("/login", data={"username": "tom", "password": PASSWORD, "csrf_token": token})

    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0


def test_every_page_carries_the_security_headers(site: Site) -> None:
    response = site.client().get("/login")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"


def test_given_an_open_redirect_in_next_then_sign_in_stays_on_this_site(site: Site) -> None:
    client = site.client()
    token = csrf(client, "/login")
    response = client.post("/login", data={"username": "ana", "password": PASSWORD, "csrf_token": token, "next": "//evil.example/x"})
    assert response.headers["location"] == "/tickets"


def test_given_a_manager_when_opening_an_operator_page_then_403_and_the_refusal_is_audited(site: Site) -> None:
    client = site.sign_in("maria")
    response = client.get("/ops")
    assert response.status_code == 403
    refused = audit.entries(site.runtime.engine, outcome="refused")
    assert [(e.actor, e.surface, e.action) for e in refused] == [("maria", "web", "ops.view")]
