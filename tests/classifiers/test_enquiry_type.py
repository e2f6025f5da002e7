from __future__ import annotations

import pytest

from classifiers.enquiry_type import KeywordTypeClassifier
from config.desk import load_desk
from config.settings import load_settings


@pytest.fixture(scope="module")
def types() -> KeywordTypeClassifier:
    return KeywordTypeClassifier(load_desk(load_settings(environ={})).taxonomy)


@pytest.mark.parametrize(
    ("subject", "text", "expected"),
    [
        ("Question about the buyer.id field", "What does the field mean and which codelist applies?", "schema"),
        ("Problème de publication", "Comment publier nos données et quelle licence ouverte choisir ?", "publication"),
        ("Capacitación para nuestro equipo", "¿Organizan talleres o un webinar de capacitación?", "training"),
        ("Mapeamento do nosso sistema", "Precisamos mapear as colunas do nosso sistema para o padrão.", "mapping"),
        ("Where can I download the data?", "I am a journalist and want to analyse contracts in a dataset.", "data_use"),
        ("Proposal: new codelist value", "We propose adding a new code to the next version of the standard.", "standard_change"),
        ("Broken link in the guidance", "The documentation page has a broken link and a typo.", "documentation"),
    ],
)
def test_cues_pick_the_type_and_explain(types: KeywordTypeClassifier, subject: str, text: str, expected: str) -> None:
    label = types.classify(subject, text)
    assert label.value == expected
    assert label.reasons[0].startswith(f"cues for {expected}")
    assert 0 < label.confidence < 1


def test_no_cue_gives_the_default_type_with_low_confidence(types: KeywordTypeClassifier) -> None:
    label = types.classify("Hi", "Thanks so much, have a nice day")
    assert label.value == "other"
    assert label.confidence < 0.3


def test_matching_ignores_case_and_accents(types: KeywordTypeClassifier) -> None:
    assert types.classify("", "LISTA DE CODIGOS").value == types.classify("", "lista de códigos").value == "schema"


def test_subject_cues_weigh_more(types: KeywordTypeClassifier) -> None:
    scores = types.scores("Training", "publish")
    assert scores["training"][0] > scores["publication"][0]
