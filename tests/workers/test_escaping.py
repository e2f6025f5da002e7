"""A hostile subject and display name go through every template and message kind and come out as plain text."""

from __future__ import annotations

import io
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
from rich.console import Console

from config.desk import load_desk
from config.settings import load_settings
from ops.views import render_tickets
from workers.outbound import cards
from workers.outbound import escaping
from workers.outbound import messages
from workers.desk.operations import Desk
from workers.outbound.email_out import Thread, compose
from workers.desk.replies import template_values

SUBJECT = "<!channel> <https://evil.example/sso|Re-authenticate your Slack> \x1b[2J\x1b]8;;https://evil.example\x07click\x1b]8;;\x07 [link=https://evil.example]x[/link]\r\nBcc: victim@evil.example"
NAME = "WIN-$500-at-https://evil.example/claim\r\nBcc: victim@evil.example"
DUE = datetime(2026, 12, 5, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def desk() -> Desk:
    return Desk(load_desk(load_settings(environ={})))


def _ticket(**values: object) -> SimpleNamespace:
    base = dict(id=7, subject=SUBJECT, type="schema", sector="government", language="en", status="open", team="general",
                channel="email", classification={}, assignee=None, first_response_due_at=DUE, priority="normal", needs_triage=False,
                routing_rule="default", suggestions=[], docs_gap=False)
    return SimpleNamespace(**{**base, **values})


def _no_slack_markup(text: str) -> None:
    assert "<!channel>" not in text
    assert "<https://evil.example" not in text
    assert "\x1b" not in text


def test_slack_messages_show_the_subject_as_text() -> None:
    for text, blocks in (messages.sla_warning("HD-7", SUBJECT, "first response", DUE, "ana", 0.8),
                         messages.sla_breach("HD-7", SUBJECT, "resolution", DUE, "ana", "priya", "General")):
        _no_slack_markup(str(blocks))
        assert "&lt;!channel&gt;" in str(blocks)


def _mrkdwn(node: object) -> list[str]:
    """Every mrkdwn text of a Block Kit structure (plain_text is never parsed for mentions or links)."""
    if isinstance(node, dict):
        own = [node["text"]] if node.get("type") == "mrkdwn" else []
        return own + [t for value in node.values() for t in _mrkdwn(value)]
    if isinstance(node, list):
        return [t for item in node for t in _mrkdwn(item)]
    return []


def test_the_card_shows_subject_name_and_summary_as_text(desk: Desk) -> None:
    enquirer = cards.Enquirer(name=NAME, address="win@lure.example", organisation="<!here>", summary=SUBJECT)
    text, blocks = cards.card(_ticket(), desk, enquirer)
    _no_slack_markup(text)
    shown = "\n".join(_mrkdwn(blocks))
    _no_slack_markup(shown)
    assert "<!here>" not in shown
    assert "\x1b" not in str(blocks)


def test_mail_headers_stay_single_lines_and_bodies_plain() -> None:
    thread = Thread(to_address="win@lure.example", to_name=NAME, subject=SUBJECT, in_reply_to=None, references=())
    mail = compose(text=f"Thanks\r\n{SUBJECT}", thread=thread, message_id="1@helpdesk.osds.example", token="HD-7",
                   mail_from="helpdesk@osds.example", desk_name="Desk\r\nBcc: x@y", reply_to=None, sent_at=DUE)
    head = mail.as_bytes().split(b"\r\n\r\n", 1)[0]
    assert b"\nBcc:" not in head
    assert mail["Bcc"] is None
    assert all("\n" not in str(mail[h]) for h in ("Subject", "To", "From"))
    assert "\x1b" not in mail.get_content()


def test_greetings_never_echo_an_untrusted_display_name(desk: Desk) -> None:
    values = template_values(desk, _ticket(), enquirer=NAME)
    assert values["enquirer_name"] == "there"
    assert "\n" not in values["subject"]
    assert template_values(desk, _ticket(), enquirer="José Pérez")["enquirer_name"] == "José"


def test_the_terminal_gets_no_escape_sequences_or_markup() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, width=200, force_terminal=True, color_system=None)
    render_tickets(console, [{"number": "HD-7", "status": "open", "type": "schema", "needs_triage": False, "sector": "government",
                              "language": "en", "team": "general", "assignee": None, "priority": "normal", "channel": "email",
                              "messages": 1, "subject": SUBJECT}])
    out = buffer.getvalue()
    assert "\x1b]8;;https://evil" not in out, "no live hyperlink"
    assert "\x1b[2J" not in out, "no clear screen"
    assert "[link=https://evil.example]" in out, "rich markup shown as typed, not interpreted"


@pytest.mark.parametrize(("raw", "expected"), [
    ("José Pérez", "José"), ("Anne-Marie Smith", "Anne-Marie"), ("O'Brien", "O'Brien"), ("ana@x.org", ""),
    ("WIN-$500-at-https://evil.example/claim", ""), ("Dr. Who", ""), ("", ""), ("A" * 40, ""),
])
def test_first_names(raw: str, expected: str) -> None:
    assert escaping.first_name(raw) == expected
