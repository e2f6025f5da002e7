"""Text normalisation and phrase lookup shared by the rule-based classifiers and routing."""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict

_SPACES = re.compile(r"\s+")
_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_WORD = re.compile(r"\w+")


def fold(text: str) -> str:
    """Lower-case, accents removed, white space collapsed: 'Código  Único' → 'codigo unico'."""
    return _SPACES.sub(" ", _unaccented(text)).strip()


def words(text: str) -> list[str]:
    """Folded word tokens: 'Lista de Códigos, buyer.id' → ['lista', 'de', 'codigos', 'buyer', 'id'].

    The white space is not collapsed first: it separates the same words either way."""
    return _WORD.findall(_unaccented(text))


def _unaccented(text: str) -> str:
    """Case-folded, compatibility-decomposed, combining marks removed; plain ASCII (most of a desk's mail) is only
    lower-cased, which is the same for it (half the time of the whole way on an enquiry)."""
    if text.isascii():
        return text.lower()
    return _COMBINING.sub("", unicodedata.normalize("NFKD", text.casefold()))


class PhraseIndex:
    """Finds whole-word phrases in text in one pass, for any number of phrases.

    Phrases and text are folded and split into words the same way, so matching
    ignores case, accents and punctuation between words ('buyer.id' matches
    'buyer id'), and never matches inside a word. Each phrase carries labels
    (e.g. the enquiry types it is a cue for).
    """

    def __init__(self, phrases: dict[str, set[str]]) -> None:
        self._labels: dict[tuple[str, ...], set[str]] = defaultdict(set)
        self._lengths: dict[str, set[int]] = defaultdict(set)  # first word → phrase lengths starting with it
        for phrase, labels in phrases.items():
            key = tuple(words(phrase))
            if key:
                self._labels[key] |= labels
                self._lengths[key[0]].add(len(key))

    def __bool__(self) -> bool:
        return bool(self._labels)

    def find(self, tokens: list[str]) -> list[tuple[str, set[str]]]:
        """Every (phrase, labels) occurring in ``tokens``, in order, overlaps included."""
        found = []
        lengths = self._lengths
        for i, token in enumerate(tokens):
            for n in lengths.get(token, ()):
                key = tuple(tokens[i : i + n])
                labels = self._labels.get(key)
                if labels is not None:
                    found.append((" ".join(key), labels))
        return found
