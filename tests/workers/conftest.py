"""Fixtures of the worker tests: settings that send mail to the local SMTP server (``smtp``); a small desk (tests/workers/desk_setup)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from config.settings import Settings
from tests.servers.slack import TOKEN
from tests.servers.smtp import SmtpServer
from tests.workers.desk_setup import ROUTING, SLA, TEAMS

MAIL_FROM = "helpdesk@osds.example"


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    """A Redis connection of the test's own (keys go under its namespace)."""
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


@pytest.fixture
def mail_settings(settings: Settings, smtp: SmtpServer) -> Settings:
    """Replies go to the local SMTP server; no acknowledgements (tests of them turn them on)."""
    return settings.model_copy(update={
        "smtp_host": "127.0.0.1", "smtp_port": smtp.port, "smtp_security": "none", "mail_from": MAIL_FROM, "acknowledge": False,
    })


@pytest.fixture
def desk_settings(settings: Settings, slack, tmp_path: Path) -> Settings:  # noqa: ANN001
    for name, text in (("teams.yaml", TEAMS), ("routing.yaml", ROUTING), ("sla.yaml", SLA)):
        (tmp_path / name).write_text(text)
    slack.fake.channel("#data")
    slack.fake.channel("#escalations")
    return settings.model_copy(update={
        "teams_file": tmp_path / "teams.yaml", "routing_file": tmp_path / "routing.yaml", "sla_file": tmp_path / "sla.yaml",
        "slack_bot_token": TOKEN, "slack_api_url": slack.api_url,
    })
