"""Robustness on real-world mail from other projects' test suites (../shared/corpus/emails; read in place, never copied)."""

from __future__ import annotations

import email
import email.policy
from datetime import datetime, timezone
from pathlib import Path

import pytest

from classifiers.automated import detect_automated
from intake.errors import RejectedInput
from intake.mime import POLICY, Limits, _MessageReader, parse_email
from intake.quoting import ReplySplitter
from tests.conftest import CORPUS, service_missing

LOREM_START = "Fusce bibendum, quam hendrerit sagittis tempor"
LOREM_END = "Fusce sed odio id arcu varius aliquet nec nec nibh."


@pytest.fixture(scope="module")
def corpus() -> Path:
    if not CORPUS.exists():
        service_missing(f"the shared e-mail corpus at {CORPUS}")
    return CORPUS


def _messages(corpus: Path) -> list[Path]:
    return sorted(p for p in corpus.rglob("*") if p.is_file() and p.suffix in ("", ".eml") and p.name not in ("LICENSE.source",))


def test_every_message_parses_or_is_rejected_with_a_reason(corpus: Path) -> None:
    files = _messages(corpus)
    assert len(files) >= 40
    parsed = rejected = 0
    for path in files:
        try:
            message = parse_email(path.read_bytes(), received_at=datetime.now(timezone.utc), source=str(path), raw_ref=None).message
            message.to_json()  # JSON-safe whatever came in
            parsed += 1
        except RejectedInput as exc:
            assert exc.reason in {"no_sender", "not_an_email", "empty", "no_content"}, path
            rejected += 1
    assert parsed >= 35


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("mailgun-flanker/bounce/zed.eml", "bounce"),
        ("mailgun-flanker/bounce/mailbox-full.eml", "bounce"),
        ("mailgun-flanker/bounce/no-mx.eml", "bounce"),
        ("mailgun-flanker/bounce/gmail-invalid-address.eml", "bounce"),
        ("mailgun-flanker/complaints/yahoo.eml", "complaint"),
        ("mailgun-flanker/disposition-notification.eml", "receipt"),
    ],
)
def test_robots_in_the_wild(corpus: Path, name: str, kind: str) -> None:
    message = parse_email((corpus / name).read_bytes(), received_at=datetime.now(timezone.utc), source=name, raw_ref=None).message
    verdict = detect_automated(message.sender.address, message.subject, message.signals, report=message.report)  # as the worker does
    assert verdict is not None
    assert verdict.kind == kind


def test_people_in_the_wild_are_not_robots(corpus: Path) -> None:
    """Every message of the other projects' suites that a person wrote (all but the robots listed above) stays a person's."""
    robots = {"bounce", "complaints", "sisimai-set-of-emails"}  # folders of robot mail; sisimai's has its own test
    robot_files = {
        "mailgun-flanker/disposition-notification.eml",
        "mailgun-flanker/apache-message-news-mime.eml",  # an Apache list's post: Precedence: bulk
        "mailgun-flanker/from-encoding.eml",  # Precedence: bulk
    }
    wrong = []
    for path in _messages(corpus):
        name = str(path.relative_to(corpus))
        if robots & set(path.relative_to(corpus).parts) or name in robot_files:
            continue
        try:
            message = parse_email(path.read_bytes(), received_at=datetime.now(timezone.utc), source=name, raw_ref=None).message
        except RejectedInput:
            continue
        verdict = detect_automated(message.sender.address, message.subject, message.signals, report=message.report)
        if verdict is not None:
            wrong.append(f"{name}: {verdict.kind} ({verdict.reason})")
    assert wrong == [], wrong


def test_dsn_fields_are_read(corpus: Path) -> None:
    message = parse_email((corpus / "mailgun-flanker/bounce/mailbox-full.eml").read_bytes(),
                          received_at=datetime.now(timezone.utc), source="", raw_ref=None).message
    assert message.report["recipient"] == "user@aol.com"
    assert message.report["status"] == "5.2.2"
    assert message.report["original_message_id"] in message.thread.references  # so it can attach to what it returns


# Quote headers in these languages are covered; Russian's has no "wrote" verb and is a known gap.
SPLIT_IN_ALL_LANGUAGES = [
    "email_danish_dash_separator.txt", "email_finnish.txt", "email_fr_multiline.txt", "email_french_2.txt",
    "email_german.txt", "email_german_outlook.txt", "email_gmail_split_line_from.txt", "email_ios_outlook.txt",
    "email_ios_outlook_fr.txt", "email_italian.txt", "email_msn.txt", "email_norwegian_gmail.txt",
    "email_original_message.txt", "email_outlook_split_line_from.txt", "email_portuguese.txt",
]


@pytest.mark.parametrize("name", SPLIT_IN_ALL_LANGUAGES)
def test_quoted_history_is_separated(corpus: Path, name: str) -> None:
    text = (corpus / "crisp-email-reply-parser" / name).read_bytes().decode("utf-8", "replace")
    new = ReplySplitter(("en", "es", "fr", "pt")).new_text(text)
    assert new.startswith(LOREM_START)
    assert new.endswith(LOREM_END)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("email_1_3.txt", "Oh thanks.\n\nHaving the function would be great."),
        ("email_BlackBerry.txt", "Here is another email"),
        ("email_iPhone.txt", "Here is another email"),
        ("email_headers_no_delimiter.txt", "And another reply!"),
        ("email_1_8.txt", "I will reply under this one\n\n\nand under this."),  # bottom-posted
        ("correct_sig.txt", "this is an email with a correct -- signature."),
    ],
)
def test_reply_parser_fixtures(corpus: Path, name: str, expected: str) -> None:
    text = (corpus / "zapier-email-reply-parser" / name).read_bytes().decode("utf-8", "replace")
    assert ReplySplitter(("en",)).new_text(text) == expected


def test_patterns_built_once_per_languages_read_every_fixture_as_the_library_does(corpus: Path) -> None:
    # Given every reply-parser fixture of the corpus, read by splitters of two sets of languages in turn
    from mailparser_reply.parser import EmailMessage  # noqa: PLC0415

    from intake.quoting import _Reading  # noqa: PLC0415

    texts = [p.read_bytes().decode("utf-8", "replace") for folder in ("crisp-email-reply-parser", "zapier-email-reply-parser")
             for p in sorted((corpus / folder).glob("*.txt"))]
    assert len(texts) > 30
    for languages in (["en", "es", "fr", "de", "it", "nl"], ["en", "de"], ["en", "es", "fr", "de", "it", "nl"]):
        for text in texts:
            # When the reading that keeps its patterns and the library's own read the same text
            ours = _Reading(text=text, languages=list(languages), keep_hyphen_lists=True).read()
            theirs = EmailMessage(text=text, languages=list(languages), keep_hyphen_lists=True).read()
            # Then they find the same replies, with the same signatures and disclaimers
            assert [(r.content, r.signatures, r.disclaimers) for r in ours.replies] == \
                   [(r.content, r.signatures, r.disclaimers) for r in theirs.replies]
    # … and each set of languages keeps its three patterns, built on first use
    assert sorted(k[0] for k in _Reading._built if k[1:] == (("en", "de"), "en", True)) == ["disclaimers", "header", "signature"]


def test_every_messages_date_is_the_one_the_stdlibs_date_header_gives(corpus: Path) -> None:
    # Given every mail of the corpus, parsed as the intake parses it
    files = [p for p in corpus.rglob("*") if p.is_file() and p.suffix != ".md"]
    dated = 0
    for path in files:
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        header = msg.get("date")
        expected = getattr(header, "datetime", None) if header is not None else None
        if expected is not None and expected.tzinfo is None:
            expected = expected.replace(tzinfo=timezone.utc)
        # When the intake reads its date (the raw value, without building the header object)
        found = _MessageReader(email.message_from_bytes(path.read_bytes(), policy=POLICY), Limits()).date()
        # Then it is policy.default's moment, written the same (it is part of the content hash that finds repeats)
        assert str(found) == str(expected), path
        dated += expected is not None
    assert dated >= 600


@pytest.mark.parametrize(("date", "expected"), [
    (b"Mon, 1 Jan 2024 10:00:00 +0200", "2024-01-01 10:00:00+02:00"),
    (b"Mon, 1 Jan 2024\r\n 10:00:00 -0000", "2024-01-01 10:00:00+00:00"),  # folded; -0000: no zone given, read as UTC
    # not dates to the header object; dates once their encoded words are decoded and NULs taken out, as before
    (b"=?utf-8?q?Mon=2C_1_Jan_2024_10=3A00=3A00_+0000?=", "2024-01-01 10:00:00+00:00"),
    (b"1 =?utf-8?b?SmFu?= 2024 10:00:00 +0000", "2024-01-01 10:00:00+00:00"),
    (b"Mon, =?utf-8?q?=EF=BC=91?= Jan 2024 10:00:00 +0000", "2024-01-01 10:00:00+00:00"),  # a full-width digit
    (b"Mon, 1 Ja\x00n 2024 10:00:00 +0100", "2024-01-01 10:00:00+01:00"),
    # no date at all (the year overflowed out of the parse before)
    (b"Mon, 1 Jan 99999999999 10:00:00 +0000", "None"),
    (b"garbage", "None"),
])
def test_a_hostile_date_header_gives_the_moment_it_always_gave(date: bytes, expected: str) -> None:
    raw = b"From: a@example.org\r\nDate: " + date + b"\r\nSubject: x\r\n\r\nbody\r\n"
    assert str(_MessageReader(email.message_from_bytes(raw, policy=POLICY), Limits()).date()) == expected
