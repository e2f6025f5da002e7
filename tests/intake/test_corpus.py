"""Tricky real-world-shaped mail written for the project (tests/data/imap-corpus), message by message."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from classifiers.automated import detect_automated
from classifiers.language import LanguageClassifier
from intake.mime import parse_email
from tests.intake.corpus_checks import CORPUS, Seen, manifest, problems

LANGUAGES = LanguageClassifier(("en", "es", "fr", "pt"))


def test_the_corpus_is_large_and_varied() -> None:
    entries = manifest()
    kinds = [e["kind"] for e in entries]
    assert len(entries) >= 60
    assert kinds.count("reply") >= 14
    assert kinds.count("auto_reply") >= 4
    assert kinds.count("bounce") >= 3
    assert {e["language"] for e in entries if e["kind"] == "reply"} >= {"en", "es", "fr", "pt"}


@pytest.mark.parametrize("entry", manifest(), ids=lambda e: e["file"])
def test_each_message_is_understood(entry: dict) -> None:
    raw = (CORPUS / entry["file"]).read_bytes()
    message = parse_email(raw, received_at=datetime.now(timezone.utc), source="corpus", raw_ref=None).message
    verdict = detect_automated(
        message.sender.address, message.subject, message.signals, message_id=message.thread.message_id,
        own_addresses=frozenset({"helpdesk@osds.example"}), own_message_id_domain="helpdesk.osds.example",
    )
    seen = Seen(
        automated_kind=verdict.kind if verdict else None,
        text=message.text,
        fresh_text=message.fresh_text,
        attachments=[a.model_dump() for a in message.attachments],
        report=message.report,
        language=LANGUAGES.classify(f"{message.subject}\n{message.fresh_text}").value if message.fresh_text.strip() else None,
    )
    assert problems(entry, seen) == []
