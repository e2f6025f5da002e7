"""The settings groups: typed views of the flat HELPDESK_* fields, never a second copy of their values."""

from __future__ import annotations

import typing
from dataclasses import fields

import pytest

from config.errors import SettingsError
from config.secrets import secret_values
from config.settings import GROUPS, Settings, load_settings

GROUP_FIELDS = [(key, f.name) for key, group in GROUPS.items() for f in fields(group)]


def test_given_smtp_variables_when_loaded_then_the_smtp_group_holds_the_host() -> None:
    settings = load_settings(environ={"HELPDESK_SMTP_HOST": "mail.osds.example", "HELPDESK_MAIL_FROM": "helpdesk@osds.example"})
    assert settings.smtp.host == "mail.osds.example"


def test_given_smtp_variables_when_loaded_then_the_smtp_group_holds_the_sender_address() -> None:
    settings = load_settings(environ={"HELPDESK_SMTP_HOST": "mail.osds.example", "HELPDESK_MAIL_FROM": "helpdesk@osds.example"})
    assert settings.smtp.mail_from == "helpdesk@osds.example"


def test_given_smtp_variables_when_loaded_then_the_flat_field_still_holds_the_host() -> None:
    settings = load_settings(environ={"HELPDESK_SMTP_HOST": "mail.osds.example"})
    assert settings.smtp_host == "mail.osds.example"


def test_given_imap_folders_when_loaded_then_the_imap_group_has_them_split() -> None:
    settings = load_settings(environ={"HELPDESK_IMAP_FOLDERS": "INBOX, Support"})
    assert settings.imap.folders == ("INBOX", "Support")


def test_given_the_ops_channel_when_loaded_then_the_slack_group_has_it() -> None:
    settings = load_settings(environ={"HELPDESK_OPS_SLACK_CHANNEL": "#ops", "HELPDESK_SLACK_BOT_TOKEN": "xoxb-1"})
    assert settings.slack.ops_channel == "#ops"


def test_given_a_raw_size_limit_when_loaded_then_the_limits_group_has_it() -> None:
    settings = load_settings(environ={"HELPDESK_MAX_RAW_BYTES": "4096"})
    assert settings.limits.max_raw_bytes == 4096


def test_given_a_web_poll_interval_when_loaded_then_the_web_group_has_it() -> None:
    settings = load_settings(environ={"HELPDESK_WEB_POLL_SECONDS": "7"})
    assert settings.web.poll_seconds == 7


def test_given_an_x_account_when_loaded_then_the_x_group_has_its_id() -> None:
    settings = load_settings(environ={"HELPDESK_X_ACCOUNT_ID": "42", "HELPDESK_X_BEARER_TOKEN": "bearer"})
    assert settings.x.account_id == "42"


def test_given_a_copy_with_a_new_flat_value_when_reading_its_group_then_the_group_shows_the_new_value() -> None:
    settings = load_settings(environ={"HELPDESK_SMTP_HOST": "old.example"})
    copy = settings.model_copy(update={"smtp_host": "new.example"})
    assert copy.smtp.host == "new.example"


def test_given_settings_when_a_group_is_read_then_it_is_frozen() -> None:
    settings = load_settings(environ={})
    with pytest.raises(AttributeError):
        settings.smtp.host = "elsewhere"  # type: ignore[misc]


@pytest.mark.parametrize(("group", "name"), GROUP_FIELDS)
def test_given_a_group_field_then_it_names_a_flat_setting(group: str, name: str) -> None:
    assert GROUPS[group].flat_name(name) in Settings.model_fields


@pytest.mark.parametrize(("group", "name"), GROUP_FIELDS)
def test_given_a_group_field_then_its_type_is_the_flat_settings_type(group: str, name: str) -> None:
    hints = typing.get_type_hints(GROUPS[group])
    assert hints[name] == Settings.model_fields[GROUPS[group].flat_name(name)].annotation


@pytest.mark.parametrize(("group", "name"), GROUP_FIELDS)
def test_given_a_group_field_then_its_variable_is_the_flat_settings_variable(group: str, name: str) -> None:
    assert GROUPS[group].env_name(name) == "HELPDESK_" + GROUPS[group].flat_name(name).upper()


def test_given_every_group_then_no_flat_setting_is_in_two_groups() -> None:
    flat = [group.flat_name(f.name) for group in GROUPS.values() for f in fields(group)]
    assert sorted(flat) == sorted(set(flat))


def test_given_the_groups_then_their_secrets_are_the_ones_redacted() -> None:
    marked = {name for group in GROUPS.values() for name in group.secret_flat_names()}
    assert marked == {"imap_password", "smtp_password", "slack_bot_token", "slack_signing_secret", "slack_app_token",
                      "x_bearer_token", "x_consumer_secret", "x_access_token", "x_access_token_secret"}


def test_given_a_group_secret_when_settings_are_redacted_then_it_is_among_the_secrets() -> None:
    settings = Settings(x_access_token_secret="oauth-token-secret")
    assert "oauth-token-secret" in secret_values(settings)


def test_given_a_smtp_password_when_the_group_is_shown_then_the_password_is_not() -> None:
    settings = Settings(smtp_host="mail.example", smtp_user="desk", smtp_password="Sekrit-pass")
    assert "Sekrit-pass" not in repr(settings.smtp)


def test_given_a_token_command_when_the_imap_group_is_shown_then_the_command_is_not() -> None:
    settings = Settings(imap_oauth2_token_command="get-token --client-secret=TopSecret99")
    assert "TopSecret99" not in repr(settings.imap)


def test_given_a_sender_address_when_no_message_id_domain_is_set_then_ours_is_a_subdomain_of_it() -> None:
    settings = load_settings(environ={"HELPDESK_MAIL_FROM": "helpdesk@OSDS.example"})
    assert settings.smtp.resolved_message_id_domain == "helpdesk.osds.example"


def test_given_a_sender_address_when_reading_the_flat_message_id_domain_then_it_is_the_groups() -> None:
    settings = load_settings(environ={"HELPDESK_MAIL_FROM": "helpdesk@osds.example"})
    assert settings.resolved_message_id_domain == settings.smtp.resolved_message_id_domain


@pytest.mark.parametrize(("security", "port"), [("tls", 465), ("starttls", 587), ("none", 25)])
def test_given_no_smtp_port_then_the_port_follows_the_security(security: str, port: int) -> None:
    settings = load_settings(environ={"HELPDESK_SMTP_SECURITY": security})
    assert settings.smtp.resolved_port == port


@pytest.mark.parametrize(("ssl", "port"), [("true", 993), ("false", 143)])
def test_given_no_imap_port_then_the_port_follows_ssl(ssl: str, port: int) -> None:
    settings = load_settings(environ={"HELPDESK_IMAP_SSL": ssl})
    assert settings.imap.resolved_port == port


@pytest.mark.parametrize("address", ["Helpdesk <helpdesk@osds.example>", "helpdesk", "help desk@osds.example"])
def test_given_a_sender_that_is_not_a_bare_address_when_loaded_then_it_is_refused_by_name(address: str) -> None:
    with pytest.raises(SettingsError, match="HELPDESK_MAIL_FROM"):
        load_settings(environ={"HELPDESK_MAIL_FROM": address})
