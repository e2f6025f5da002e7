"""The expectations of tests/data/imap-corpus/expected.json, checked against one stored (or parsed) message."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1] / "data" / "imap-corpus"
AUTOMATED = {"auto_reply": "auto_reply", "bounce": "bounce", "list": "list", "bulk": "bulk", "receipt": "receipt", "own_echo": "own"}


def manifest() -> list[dict]:
    return json.loads((CORPUS / "expected.json").read_text())["files"]


@dataclass
class Seen:
    """What the system made of one message (from the database or from parsing)."""

    automated_kind: str | None
    text: str
    fresh_text: str
    attachments: list[dict]
    report: dict | None
    language: str | None


def problems(entry: dict, seen: Seen, languages: tuple[str, ...] = ("en", "es", "fr", "pt")) -> list[str]:
    found = []
    expected_kind = AUTOMATED.get(entry["kind"])
    if seen.automated_kind != expected_kind:
        found.append(f"automated kind {seen.automated_kind!r}, expected {expected_kind!r}")
    # a robot's message has no "new part": its phrases are looked for in the whole text
    text = seen.fresh_text if expected_kind is None else seen.text
    for phrase in entry.get("text_contains", []):
        if " ".join(phrase.split()) not in " ".join(text.split()):
            found.append(f"{'new text' if expected_kind is None else 'text'} lacks {phrase!r}")
    if entry["kind"] in ("enquiry", "reply"):
        for phrase in entry.get("text_excludes", []):
            if " ".join(phrase.split()) in " ".join(seen.fresh_text.split()):
                found.append(f"new text still holds {phrase!r}")
    names = {a.get("filename") for a in seen.attachments}
    for name in entry.get("attachments", []):
        if name not in names:
            found.append(f"attachment {name!r} missing (have {sorted(n for n in names if n)})")
    inline = sum(1 for a in seen.attachments if a.get("inline") and a.get("content_type", "").startswith("image/"))
    if "inline_images" in entry and inline != entry["inline_images"]:
        found.append(f"{inline} inline images, expected {entry['inline_images']}")
    report = seen.report or {}
    if "bounce_recipient" in entry and report.get("recipient") != entry["bounce_recipient"].lower():
        found.append(f"bounce recipient {report.get('recipient')!r}, expected {entry['bounce_recipient']!r}")
    if "bounce_original_message_id" in entry and report.get("original_message_id") != entry["bounce_original_message_id"]:
        found.append(f"bounced message {report.get('original_message_id')!r}, expected {entry['bounce_original_message_id']!r}")
    if expected_kind is None and entry.get("language") in languages and seen.language and seen.language != entry["language"]:
        found.append(f"language {seen.language}, expected {entry['language']}")
    return found
