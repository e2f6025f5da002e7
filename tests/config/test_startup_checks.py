"""Start-up checks: a half-configured channel stops the process that uses it, with one line naming the variables."""

from __future__ import annotations

import pytest

from config.errors import SettingsError
from config.settings import PROCESSES, load_settings, require, startup_problem

IMAP = {"HELPDESK_IMAP_HOST": "imap.osds.example", "HELPDESK_IMAP_USER": "desk", "HELPDESK_IMAP_PASSWORD": "mailbox-pass"}
SMTP = {"HELPDESK_SMTP_HOST": "mail.osds.example", "HELPDESK_MAIL_FROM": "helpdesk@osds.example"}
X_KEYS = {"HELPDESK_X_CONSUMER_KEY": "ck", "HELPDESK_X_CONSUMER_SECRET": "cs", "HELPDESK_X_ACCESS_TOKEN": "at",
          "HELPDESK_X_ACCESS_TOKEN_SECRET": "ats"}
X_READ_ONLY = {"HELPDESK_X_ACCOUNT_ID": "42", "HELPDESK_X_BEARER_TOKEN": "bearer"}
SLACK = {"HELPDESK_SLACK_BOT_TOKEN": "xoxb-1", "HELPDESK_SLACK_SIGNING_SECRET": "signing"}


def problem(process: str, **environ: str) -> str | None:
    return startup_problem(load_settings(environ=environ), process)


# -- half-configured channels: each is named with what is set and what is missing ----------------------
@pytest.mark.parametrize(("process", "environ", "message"), [
    ("worker", {"HELPDESK_SMTP_HOST": "mail.osds.example"},
     "SMTP is half-configured: HELPDESK_SMTP_HOST is set but HELPDESK_MAIL_FROM is not"),
    ("worker", {**SMTP, "HELPDESK_SMTP_USER": "desk"},
     "SMTP is half-configured: HELPDESK_SMTP_USER is set but HELPDESK_SMTP_PASSWORD is not"),
    ("worker", {"HELPDESK_SMTP_PASSWORD": "pw"},
     "SMTP is half-configured: HELPDESK_SMTP_PASSWORD is set but HELPDESK_SMTP_HOST and HELPDESK_SMTP_USER are not"),
    ("worker", {"HELPDESK_SMTP_PORT": "2525"},
     "SMTP is half-configured: HELPDESK_SMTP_PORT is set but HELPDESK_SMTP_HOST is not"),
    ("worker", X_KEYS,
     "X is half-configured: HELPDESK_X_CONSUMER_KEY, HELPDESK_X_CONSUMER_SECRET, HELPDESK_X_ACCESS_TOKEN and "
     "HELPDESK_X_ACCESS_TOKEN_SECRET are set but HELPDESK_X_ACCOUNT_ID is not"),
    ("worker", {"HELPDESK_X_ACCOUNT_ID": "42", "HELPDESK_X_CONSUMER_KEY": "ck", "HELPDESK_X_ACCESS_TOKEN": "at"},
     "X is half-configured: HELPDESK_X_CONSUMER_KEY and HELPDESK_X_ACCESS_TOKEN are set but HELPDESK_X_CONSUMER_SECRET and "
     "HELPDESK_X_ACCESS_TOKEN_SECRET are not"),
    ("worker", {"HELPDESK_X_ACCOUNT_ID": "42"},
     "X is half-configured: HELPDESK_X_ACCOUNT_ID is set but HELPDESK_X_BEARER_TOKEN (or HELPDESK_X_CONSUMER_KEY, "
     "HELPDESK_X_CONSUMER_SECRET, HELPDESK_X_ACCESS_TOKEN and HELPDESK_X_ACCESS_TOKEN_SECRET) is not"),
    ("worker", {"HELPDESK_OPS_SLACK_CHANNEL": "#ops"},
     "Slack is half-configured: HELPDESK_OPS_SLACK_CHANNEL is set but HELPDESK_SLACK_BOT_TOKEN is not"),
    ("web", {"HELPDESK_SLACK_SIGNING_SECRET": "signing"},
     "Slack is half-configured: HELPDESK_SLACK_SIGNING_SECRET is set but HELPDESK_SLACK_BOT_TOKEN is not"),
    ("web", {"HELPDESK_SLACK_BOT_TOKEN": "xoxb-1", "HELPDESK_SLACK_INTAKE_CHANNELS": "C1"},
     "Slack is half-configured: HELPDESK_SLACK_INTAKE_CHANNELS is set but HELPDESK_SLACK_SIGNING_SECRET "
     "(or HELPDESK_SLACK_APP_TOKEN) is not"),
    ("slack-socket", {"HELPDESK_SLACK_APP_TOKEN": "xapp-1"},
     "Slack is half-configured: HELPDESK_SLACK_APP_TOKEN is set but HELPDESK_SLACK_BOT_TOKEN is not"),
    ("intake-imap", {"HELPDESK_IMAP_HOST": "imap.osds.example"},
     "IMAP is half-configured: HELPDESK_IMAP_HOST is set but HELPDESK_IMAP_USER and HELPDESK_IMAP_PASSWORD "
     "(or HELPDESK_IMAP_OAUTH2_TOKEN_COMMAND) are not"),
    ("intake-imap", {"HELPDESK_IMAP_USER": "desk", "HELPDESK_IMAP_PASSWORD": "pw"},
     "IMAP is half-configured: HELPDESK_IMAP_USER and HELPDESK_IMAP_PASSWORD are set but HELPDESK_IMAP_HOST is not"),
    ("intake-x", {"HELPDESK_X_BEARER_TOKEN": "bearer"},
     "X is half-configured: HELPDESK_X_BEARER_TOKEN is set but HELPDESK_X_ACCOUNT_ID is not"),
])
def test_given_a_half_configured_channel_when_a_process_using_it_starts_then_the_problem_names_the_variables(
    process: str, environ: dict[str, str], message: str,
) -> None:
    assert problem(process, **environ) == message


# -- the channel a process exists for must be there --------------------------------------------------
@pytest.mark.parametrize(("process", "environ", "message"), [
    ("intake-imap", {},
     "helpdesk intake imap needs HELPDESK_IMAP_HOST, HELPDESK_IMAP_USER and HELPDESK_IMAP_PASSWORD "
     "(or HELPDESK_IMAP_OAUTH2_TOKEN_COMMAND), which are not set"),
    ("intake-x", {},
     "helpdesk intake x needs HELPDESK_X_ACCOUNT_ID and HELPDESK_X_BEARER_TOKEN (or HELPDESK_X_CONSUMER_KEY, "
     "HELPDESK_X_CONSUMER_SECRET, HELPDESK_X_ACCESS_TOKEN and HELPDESK_X_ACCESS_TOKEN_SECRET), which are not set"),
    ("slack-socket", {},
     "helpdesk slack socket needs HELPDESK_SLACK_APP_TOKEN and HELPDESK_SLACK_BOT_TOKEN, which are not set"),
    ("slack-socket", {"HELPDESK_SLACK_BOT_TOKEN": "xoxb-1"},
     "helpdesk slack socket needs HELPDESK_SLACK_APP_TOKEN, which is not set"),
])
def test_given_an_unconfigured_channel_when_its_own_process_starts_then_the_problem_names_what_it_needs(
    process: str, environ: dict[str, str], message: str,
) -> None:
    assert problem(process, **environ) == message


# -- off or complete: nothing to say -----------------------------------------------------------------------
@pytest.mark.parametrize("process", ["worker", "web"])
def test_given_no_channel_configured_when_a_process_without_a_channel_of_its_own_starts_then_all_is_well(process: str) -> None:
    assert problem(process) is None


@pytest.mark.parametrize(("process", "environ"), [
    ("worker", {**SMTP, **IMAP, **X_READ_ONLY, **X_KEYS, **SLACK}),
    ("worker", {**SMTP, "HELPDESK_SMTP_USER": "desk", "HELPDESK_SMTP_PASSWORD": "pw"}),
    ("worker", X_READ_ONLY),  # mentions only: documented, X replies wait queued
    ("worker", {"HELPDESK_SLACK_BOT_TOKEN": "xoxb-1"}),  # posting only
    ("worker", {"HELPDESK_MAIL_FROM": "helpdesk@osds.example"}),  # SMTP off: e-mail replies wait queued (documented)
    ("web", SLACK),
    ("web", {"HELPDESK_SLACK_BOT_TOKEN": "xoxb-1", "HELPDESK_SLACK_APP_TOKEN": "xapp-1", "HELPDESK_SLACK_INTAKE_CHANNELS": "C1"}),
    ("slack-socket", {"HELPDESK_SLACK_BOT_TOKEN": "xoxb-1", "HELPDESK_SLACK_APP_TOKEN": "xapp-1"}),
    ("intake-imap", IMAP),
    ("intake-imap", {**IMAP, "HELPDESK_IMAP_PASSWORD": "", "HELPDESK_IMAP_OAUTH2_TOKEN_COMMAND": "get-token"}),
    ("intake-x", X_READ_ONLY),
    ("intake-x", {"HELPDESK_X_ACCOUNT_ID": "42", **X_KEYS}),
])
def test_given_complete_channels_when_the_process_starts_then_all_is_well(process: str, environ: dict[str, str]) -> None:
    assert problem(process, **environ) is None


@pytest.mark.parametrize(("process", "environ"), [
    ("intake-imap", {**IMAP, "HELPDESK_SMTP_HOST": "mail.osds.example"}),
    ("intake-x", {**X_READ_ONLY, "HELPDESK_SLACK_SIGNING_SECRET": "signing"}),
    ("web", {"HELPDESK_SMTP_HOST": "mail.osds.example"}),
])
def test_given_a_half_configured_channel_when_a_process_not_using_it_starts_then_it_is_not_its_concern(
    process: str, environ: dict[str, str],
) -> None:
    assert problem(process, **environ) is None


# -- the message and the error -------------------------------------------------------------------------------
def test_given_two_half_configured_channels_when_the_worker_starts_then_both_are_named() -> None:
    message = problem("worker", HELPDESK_SMTP_HOST="mail.osds.example", HELPDESK_SLACK_SIGNING_SECRET="signing") or ""
    assert [part.split(" is half-configured")[0] for part in message.split("; ")] == ["SMTP", "Slack"]


def test_given_two_half_configured_channels_when_the_worker_starts_then_the_message_is_one_line() -> None:
    message = problem("worker", HELPDESK_SMTP_HOST="mail.osds.example", HELPDESK_X_ACCOUNT_ID="42",
                      HELPDESK_SLACK_SIGNING_SECRET="signing") or ""
    assert "\n" not in message


def test_given_a_secret_value_when_its_channel_is_half_configured_then_the_message_does_not_show_it() -> None:
    message = problem("worker", HELPDESK_SMTP_PASSWORD="Sekrit-pass") or ""
    assert "Sekrit-pass" not in message


def test_given_a_half_configured_channel_when_required_then_a_settings_error_says_so() -> None:
    with pytest.raises(SettingsError, match="^SMTP is half-configured: HELPDESK_SMTP_HOST is set but HELPDESK_MAIL_FROM is not$"):
        require(load_settings(environ={"HELPDESK_SMTP_HOST": "mail.osds.example"}), "worker")


def test_given_complete_settings_when_required_then_nothing_is_raised() -> None:
    assert require(load_settings(environ=SMTP), "worker") is None


def test_given_an_unknown_process_when_checked_then_it_is_a_programming_error() -> None:
    with pytest.raises(KeyError):
        startup_problem(load_settings(environ={}), "mailman")


def test_given_the_long_running_processes_then_each_has_a_check() -> None:
    assert set(PROCESSES) == {"intake-imap", "intake-x", "slack-socket", "worker", "web"}
