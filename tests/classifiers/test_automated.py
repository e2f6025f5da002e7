from __future__ import annotations

import pytest

from classifiers.automated import detect_automated


@pytest.mark.parametrize(
    ("sender", "subject", "signals", "kind"),
    [
        ("a@b.org", "Re: hello", {"auto-submitted": "auto-replied"}, "auto_reply"),
        ("a@b.org", "Re: hello", {"auto-submitted": "auto-generated"}, "auto_reply"),
        ("a@b.org", "hello", {"x-autoreply": "yes"}, "auto_reply"),
        ("a@b.org", "hello", {"precedence": "auto_reply"}, "auto_reply"),
        ("a@b.org", "Out of office: back Monday", {}, "auto_reply"),
        ("a@b.org", "Respuesta automática: Re: datos", {}, "auto_reply"),
        ("a@b.org", "Réponse automatique : absent", {}, "auto_reply"),
        ("a@b.org", "Absence: until 3 Nov", {"x-auto-response-suppress": "All"}, "auto_reply"),
        ("MAILER-DAEMON@mx.b.org", "Undelivered Mail Returned to Sender", {}, "bounce"),
        ("postmaster@b.org", "failure", {}, "bounce"),
        ("a@b.org", "x", {"content-type": 'multipart/report; report-type="delivery-status"; boundary="x"'}, "bounce"),
        ("a@b.org", "newsletter", {"list-id": "<news.b.org>"}, "list"),
        ("a@b.org", "newsletter", {"precedence": "bulk"}, "bulk"),
        ("a@b.org", "hello", {"return-path": "<>"}, "auto_reply"),
        ("post_master@vtext.com", "Re: Nyaan", {}, "bounce"),
        ("a@b.org", "x", {"return-path": "<MAILER-DAEMON>"}, "bounce"),
        ("a@b.org", "Undeliverable: datos", {}, "bounce"),
        ("a@b.org", "Non recapitabile: dati", {}, "bounce"),
        ("a@b.org", "Недоставленное сообщение", {}, "bounce"),
        ("a@b.org", "メールエラー通知", {}, "bounce"),
        ("a@b.org", "メッセージを配信できません。", {}, "bounce"),  # voiced kana survive folding
        ("a@b.org", "complaint about message from 192.0.2.1", {}, "complaint"),
        ("a@b.org", "You are not member (neko ML)", {"x-mlserver": "fml [fml 4.0.3]"}, "list"),
        ("a@b.org", "Digest", {"mailing-list": "contact x-help@b.org; run by ezmlm"}, "list"),
        ("a@b.org", "[dev] question", {"list-post": "<mailto:dev@lists.b.org>"}, "list"),
        ("no-reply@sns.amazonaws.com", "AWS Notification Message", {"x-amz-sns-message-id": "ad6b"}, "bulk"),
    ],
)
def test_robots_are_recognised_with_a_reason(sender: str, subject: str, signals: dict[str, str], kind: str) -> None:
    verdict = detect_automated(sender, subject, signals)
    assert verdict is not None
    assert verdict.kind == kind
    assert verdict.reason


@pytest.mark.parametrize(
    ("subject", "signals"),
    [
        ("Absence of the tender/value field", {}),
        ("Validation errors", {"auto-submitted": "no"}),
        ("Question", {"return-path": "<a@b.org>", "content-type": "text/plain"}),
        ("Delivery failure of our weekly data feed", {}),  # "delivery" of data is a person's topic
        ("Returned values differ from the schema", {}),
        ("Complaint about the registry", {}),
        ("Re: loop", {"x-loop": "someone@elsewhere.org"}),  # a loop guard naming somebody else says nothing
    ],
)
def test_people_are_not_robots(subject: str, signals: dict[str, str]) -> None:
    assert detect_automated("person@b.org", subject, signals) is None


@pytest.mark.parametrize(
    ("report", "kind"),
    [
        ({"kind": "ses-bounce", "recipient": "x@b.org", "action": "failed"}, "bounce"),
        ({"kind": "ses-complaint", "recipient": "x@b.org"}, "complaint"),
        ({"kind": "ses-delivery", "recipient": "x@b.org", "action": "delivered"}, "receipt"),
        ({"kind": "plain-bounce", "recipient": "x@b.org", "action": "failed"}, "bounce"),
    ],
)
def test_a_report_read_from_the_body_decides_the_kind(report: dict[str, str], kind: str) -> None:
    verdict = detect_automated("no-reply@sns.amazonaws.com", "AWS Notification Message", {"x-amz-sns-message-id": "1"}, report=report)
    assert verdict is not None
    assert verdict.kind == kind
    assert "x@b.org" in verdict.reason


def test_a_loop_guard_naming_us_is_our_own_mail() -> None:
    verdict = detect_automated("list@b.org", "Re: your ticket", {"x-loop": "helpdesk@osds.example"},
                               own_addresses=frozenset({"helpdesk@osds.example"}))
    assert verdict is not None
    assert verdict.kind == "own"
    assert "X-Loop" in verdict.reason
