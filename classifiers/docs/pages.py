"""Documentation pages as the index receives them from a loader (``config.docs_pages``): values, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Page:
    """A documentation page as read from its source: the text is only used to build the index."""

    title: str
    url: str
    language: str | None
    text: str


@dataclass(frozen=True)
class Skipped:
    """A page left out of the index, and why (``index: false``, unreadable, empty, …)."""

    path: str
    reason: str


_LANGUAGE_CODE = re.compile(r"([a-z]{2})(?:[-_][a-z]{2,4})?")


def language_code(value: object) -> str | None:
    """The two-letter language of a code or tag ('pt-BR' → 'pt', 'en_GB' → 'en'), or None when it is none."""
    match = _LANGUAGE_CODE.fullmatch(str(value or "").strip().lower())
    return match.group(1) if match else None
