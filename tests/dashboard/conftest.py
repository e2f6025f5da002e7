"""Fixtures of the web dashboard's tests: the real app (``ops.web.build_app``) on a real port, with people who
have passwords, and tickets made by the real pipeline."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from pydantic import SecretStr

from config.settings import Settings
from ops.runtime import Runtime
from storage.credentials import set_password_hash
from tests.factories import make_message
from tests.servers.asgi import serve
from web.passwords import hash_password

PASSWORD = "correct horse battery staple"
SECRET = "test-desk-secret-0123456789abcdef-0123456789"


@dataclass
class Site:
    url: str
    runtime: Runtime

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, follow_redirects=False, timeout=20, **kwargs)  # type: ignore[arg-type]

    def sign_in(self, username: str, password: str = PASSWORD) -> httpx.Client:
        client = self.client()
        response = client.post("/login", data={"username": username, "password": password, "csrf_token": csrf(client, "/login")})
        assert response.status_code == 303, response.text
        return client

    def open_ticket(self, external_id: str, **fields: object) -> int:
        """A ticket opened by the real pipeline, as the worker would."""
        from workers.services import build_services  # noqa: PLC0415

        services = build_services(self.runtime.settings, self.runtime.broker, self.runtime.engine)
        outcome = services.pipeline.process(make_message(external_id, **fields), f"d-{external_id}")  # type: ignore[arg-type]
        assert outcome.ticket_id is not None
        return outcome.ticket_id


def csrf(client: httpx.Client, path: str) -> str:
    page = client.get(path)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, f"no CSRF token on {path}: {page.status_code}"
    return found.group(1)


def use_settings_for_commands(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment a `helpdesk` command run in this process reads: the test's data folder, database and Redis."""
    for name, value in {"HELPDESK_DATA_DIR": str(settings.data_dir), "HELPDESK_DATABASE_URL": settings.resolved_database_url,
                        "HELPDESK_REDIS_URL": settings.redis_url, "HELPDESK_REDIS_NAMESPACE": settings.redis_namespace}.items():
        monkeypatch.setenv(name, str(value))


@pytest.fixture
def web_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"secret_key": SecretStr(SECRET), "web_poll_seconds": 2})


@pytest.fixture
def site(web_settings: Settings) -> Iterator[Site]:
    from ops.web import build_app  # noqa: PLC0415

    with Runtime(web_settings) as runtime:
        for person in ("ana", "tom", "maria", "olu", "admin"):
            set_password_hash(runtime.engine, person, hash_password(PASSWORD))
        with serve(build_app(runtime)) as url:
            yield Site(url, runtime)
