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
    ],
)
def test_robots_are_recognised_with_a_reason(sender: str, subject: str, signals: dict[str, str], kind: str) -> None:
    verdict = detect_automated(sender, subject, signals)
    assert verdict is not None and verdict.kind == kind and verdict.reason


@pytest.mark.parametrize(
    ("subject", "signals"),
    [
        ("Absence of the tender/value field", {}),
        ("Validation errors", {"auto-submitted": "no"}),
        ("Question", {"return-path": "<a@b.org>", "content-type": "text/plain"}),
    ],
)
def test_people_are_not_robots(subject: str, signals: dict[str, str]) -> None:
    assert detect_automated("person@b.org", subject, signals) is None
