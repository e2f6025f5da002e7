"""Text normalisation shared by the rule-based classifiers."""

from __future__ import annotations

import re
import unicodedata

_SPACES = re.compile(r"\s+")
_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")


def fold(text: str) -> str:
    """Lower-case, accents removed, white space collapsed: 'Código  Único' → 'codigo unico'."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = _COMBINING.sub("", decomposed)
    return _SPACES.sub(" ", stripped).strip()


def phrase_pattern(phrases: list[str]) -> re.Pattern[str] | None:
    """One regex matching any of ``phrases`` (already folded) on word boundaries, longest first."""
    unique = sorted({p for p in phrases if p}, key=len, reverse=True)
    if not unique:
        return None
    body = "|".join(re.escape(p).replace(r"\ ", r"\s+") for p in unique)
    return re.compile(rf"(?<!\w)(?:{body})(?!\w)")
