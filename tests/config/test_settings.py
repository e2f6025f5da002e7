from __future__ import annotations

from pathlib import Path

import pytest

from config.desk import load_desk
from config.errors import ConfigFileError, SettingsError
from config.settings import load_settings


def test_defaults_are_the_embedded_setup() -> None:
    settings = load_settings(environ={})
    assert settings.embedded_redis
    assert settings.resolved_database_url.startswith("sqlite:///")
    assert settings.resolved_database_url.endswith("helpdesk-data/helpdesk.db")
    assert settings.languages == ("en", "es", "fr", "pt")


def test_environment_values_are_parsed() -> None:
    settings = load_settings(
        environ={"HELPDESK_REDIS_URL": "redis://h:6379/2", "HELPDESK_LANGUAGES": "en, fr", "HELPDESK_WORKER_THREADS": "3"}
    )
    assert settings.redis_url == "redis://h:6379/2"
    assert settings.languages == ("en", "fr")
    assert settings.worker_threads == 3


def test_unknown_variables_fail_loudly() -> None:
    with pytest.raises(SettingsError, match="HELPDESK_REDIS_ULR"):
        load_settings(environ={"HELPDESK_REDIS_ULR": "redis://x"})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("HELPDESK_DATABASE_URL", "mysql://x/y"),
        ("HELPDESK_REDIS_URL", "http://x"),
        ("HELPDESK_WORKER_THREADS", "0"),
        ("HELPDESK_LANGUAGES", "english"),
        ("HELPDESK_TRIAGE_CONFIDENCE", "2"),
        ("HELPDESK_TICKET_PREFIX", "hd lower"),
    ],
)
def test_bad_values_name_the_variable(key: str, value: str) -> None:
    with pytest.raises(SettingsError, match=key):
        load_settings(environ={key: value})


def test_shipped_desk_files_are_consistent() -> None:
    desk = load_desk(load_settings(environ={}))
    assert "other" in desk.taxonomy.types
    assert len(desk.taxonomy.types) == 12
    assert desk.routing.default.team in desk.teams.teams


def test_routing_rule_naming_an_unknown_team_is_refused(tmp_path: Path) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text(
        "version: 1\ndefault: {team: general}\nrules:\n"
        "  - {name: r1, when: {type: [schema]}, team: nobody}\n"
        "  - {name: r2, when: {type: [no_such_type], language: [xx]}, team: general, priority: whenever}\n"
    )
    with pytest.raises(ConfigFileError) as caught:
        load_desk(load_settings(environ={}, routing_file=routing))
    message = str(caught.value)
    assert "unknown team 'nobody'" in message
    assert "unknown type 'no_such_type'" in message
    assert "unknown language 'xx'" in message
    assert "priority 'whenever'" in message


def test_malformed_yaml_is_refused(tmp_path: Path) -> None:
    teams = tmp_path / "teams.yaml"
    teams.write_text("version: 1\nteams: [not, a, mapping\n")
    with pytest.raises(ConfigFileError, match="teams.yaml"):
        load_desk(load_settings(environ={}, teams_file=teams))
