"""The real `helpdesk` processes refuse a half-configured channel at start: exit 2, one line, no traceback."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli import HELPDESK, cli_env

NO_REDIS = "redis://127.0.0.1:1/0"  # were the check missing, the process would wait here (and start no embedded server)
START_TIMEOUT = 15

HALF_SMTP = "SMTP is half-configured: HELPDESK_SMTP_HOST is set but HELPDESK_MAIL_FROM is not"
HALF_SLACK = "Slack is half-configured: HELPDESK_SLACK_SIGNING_SECRET is set but HELPDESK_SLACK_BOT_TOKEN is not"
HALF_SOCKET = "Slack is half-configured: HELPDESK_SLACK_APP_TOKEN is set but HELPDESK_SLACK_BOT_TOKEN is not"
HALF_IMAP = ("IMAP is half-configured: HELPDESK_IMAP_HOST is set but HELPDESK_IMAP_USER and HELPDESK_IMAP_PASSWORD "
             "(or HELPDESK_IMAP_OAUTH2_TOKEN_COMMAND) are not")
NO_IMAP = ("helpdesk intake imap needs HELPDESK_IMAP_HOST, HELPDESK_IMAP_USER and HELPDESK_IMAP_PASSWORD "
           "(or HELPDESK_IMAP_OAUTH2_TOKEN_COMMAND), which are not set")
HALF_X = "X is half-configured: HELPDESK_X_BEARER_TOKEN is set but HELPDESK_X_ACCOUNT_ID is not"


@dataclass(frozen=True)
class Started:
    returncode: int | None  # None: still running when given up on
    stderr: str


def start(args: list[str], folder: Path, **settings: object) -> Started:
    """Run `helpdesk ARGS` as an operator would: no terminal, so no COLUMNS (a rich console then wraps at 80)."""
    env = cli_env(data_dir=folder / "data", redis_url=NO_REDIS, **settings)
    env.pop("COLUMNS")
    try:
        result = subprocess.run([*HELPDESK, *args], env=env, capture_output=True, text=True, timeout=START_TIMEOUT)
    except subprocess.TimeoutExpired:
        return Started(None, f"(still running after {START_TIMEOUT} s)")
    return Started(result.returncode, result.stderr)


CASES = {
    "intake-imap-half": (["intake", "imap"], {"imap_host": "imap.osds.example"}, HALF_IMAP),
    "intake-imap-unconfigured": (["intake", "imap"], {}, NO_IMAP),
    "intake-x-half": (["intake", "x"], {"x_bearer_token": "bearer-token"}, HALF_X),
    "worker-half-smtp": (["worker"], {"smtp_host": "mail.osds.example"}, HALF_SMTP),
    "web-half-slack": (["web"], {"slack_signing_secret": "signing-secret"}, HALF_SLACK),
    "slack-socket-half": (["slack", "socket"], {"slack_app_token": "xapp-1"}, HALF_SOCKET),
}

# `helpdesk worker`, `web` and `slack socket` start in ops/processes_cli.py; they pass the check once it calls
# settings(process="worker" | "web" | "slack-socket") (issue #14). Strict: remove these marks with that call.
PENDING = pytest.mark.xfail(strict=True, reason="ops/processes_cli.py does not yet call settings(process=...)")


def cases(*pending: str) -> list[object]:
    return [pytest.param(name, id=name, marks=PENDING if name in pending else ()) for name in CASES]


@pytest.fixture(scope="module")
def started(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Started:
    """Each case's process, run once for all the facts checked about it."""
    args, settings, _ = CASES[request.param]
    return start(args, tmp_path_factory.mktemp(request.param), **settings)


@pytest.mark.parametrize("started", cases(), indirect=True)
def test_given_a_half_configured_channel_when_the_process_starts_then_it_exits_2(started: Started) -> None:
    assert started.returncode == 2


@pytest.mark.parametrize("started", cases(), indirect=True)
def test_given_a_half_configured_channel_when_the_process_starts_then_it_names_the_variables_in_one_line(
    started: Started, request: pytest.FixtureRequest,
) -> None:
    message = CASES[request.node.callspec.params["started"]][2]
    assert started.stderr == f"configuration error: {message}\n"


@pytest.mark.parametrize("started", cases(), indirect=True)
def test_given_a_half_configured_channel_when_the_process_starts_then_it_prints_no_traceback(started: Started) -> None:
    assert started.returncode is not None
    assert "Traceback" not in started.stderr


def test_given_a_half_configured_mailbox_when_the_imap_adapter_starts_then_it_makes_no_data_folder(tmp_path: Path) -> None:
    start(["intake", "imap"], tmp_path, imap_host="imap.osds.example")
    assert not (tmp_path / "data").exists()


def test_given_a_half_configured_smtp_when_a_one_shot_command_runs_then_it_is_not_refused(tmp_path: Path) -> None:
    assert start(["x", "--help"], tmp_path, smtp_host="mail.osds.example").returncode == 0
