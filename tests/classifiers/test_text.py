from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import pytest

from classifiers.text import PhraseIndex, fold, words

ROOT = Path(__file__).resolve().parents[2]
TRICKY = [
    "Código  Único", "Lista de Códigos, buyer.id", "straße STRASSE", "İstanbul ıi", "e\u0301te\u0301", "Ａｂｃ ＤＥＦ ﬁle",
    "\u00a0non\u2003breaking\u2028line\t", "ǅungla ǈ", "Ωμέγα ΣΊΣΥΦΟΣ", "x\u0000y", "١٢٣ ٤٥", "  padded  ASCII\r\n", "", "ÀÉÎÕÜ ç ñ",
]


def reference_fold(text: str) -> str:
    """The whole way, for every text: case-folded, compatibility-decomposed, combining marks removed, white space collapsed."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = re.sub("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]", "", decomposed)
    return re.sub(r"\s+", " ", stripped).strip()


def enquiry_texts() -> list[str]:
    texts = []
    for path in [ROOT / "classifiers/data/real/enquiries.jsonl", *sorted((ROOT / "classifiers/data").glob("examples-*.jsonl"))]:
        for line in path.read_text(encoding="utf-8").splitlines():
            enquiry = json.loads(line)
            texts += [enquiry.get("subject", ""), enquiry.get("text", "")]
    return texts


@pytest.mark.parametrize("text", TRICKY)
def test_fold_and_words_of_tricky_texts_are_those_of_the_whole_way(text: str) -> None:
    assert fold(text) == reference_fold(text)
    assert words(text) == re.findall(r"\w+", reference_fold(text))


def test_fold_and_words_of_every_labelled_enquiry_are_those_of_the_whole_way() -> None:
    # Given the enquiries of four languages (a third of them with accents), and plain ASCII ones
    texts = enquiry_texts()
    assert sum(not t.isascii() for t in texts) > 100
    assert sum(t.isascii() for t in texts) > 100
    # Then the short way for ASCII, and words without collapsing white space, change nothing
    assert [fold(t) for t in texts] == [reference_fold(t) for t in texts]
    assert [words(t) for t in texts] == [re.findall(r"\w+", reference_fold(t)) for t in texts]


def test_examples_of_the_docstrings() -> None:
    assert fold("Código  Único") == "codigo unico"
    assert words("Lista de Códigos, buyer.id") == ["lista", "de", "codigos", "buyer", "id"]
    assert PhraseIndex({"buyer id": {"ids"}}).find(words("Our Buyer.ID is missing")) == [("buyer id", {"ids"})]
