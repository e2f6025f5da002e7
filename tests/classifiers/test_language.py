from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from lingua import Language, LanguageDetectorBuilder

from classifiers.language import LanguageClassifier, SharedDetector

LINGUA_LANGUAGES = (Language.ENGLISH, Language.SPANISH, Language.FRENCH, Language.PORTUGUESE)


@pytest.fixture(scope="module")
def languages() -> LanguageClassifier:
    return LanguageClassifier(("en", "es", "fr", "pt"))


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("We get a validation error when we upload our file to the review tool.", "en"),
        ("Tenemos un problema con la validación de los datos de contratación pública.", "es"),
        ("Nous avons une question sur la publication de nos données de marchés publics.", "fr"),
        ("Gostaríamos de saber como publicar os dados de contratações do nosso município.", "pt"),
    ],
)
def test_detects_configured_languages(languages: LanguageClassifier, text: str, code: str) -> None:
    label = languages.classify(text)
    assert label.value == code
    assert label.confidence > 0.5


def test_too_little_text_falls_back_to_the_first_language(languages: LanguageClassifier) -> None:
    label = languages.classify("ok")
    assert label.value == "en"
    assert label.confidence == 0.0


def test_a_short_text_after_a_long_one_is_read_with_every_model(languages: LanguageClassifier) -> None:
    # Given a long enquiry first (lingua reads a text of 120 letters or more with its trigram models alone)
    long_text = ("We get a validation error when we upload our file to the review tool, and the report does not say which "
                 "field of the release is wrong or how we should correct it before publishing again.")
    assert sum(c.isalpha() for c in long_text) >= 120
    assert languages.classify(long_text).value == "en"
    # When a subject alone comes next (read with every n-gram model, loaded now; the low-accuracy mode said French)
    label = languages.classify("validation report")
    # Then
    assert label.value == "en"


SHORT_AND_LONG = [
    "validation report",
    "informe de validación",
    "rapport de validation",
    "relatório de validação",
    "We get a validation error when we upload our file to the review tool, and the report does not say which field of "
    "the release is wrong or how we should correct it before publishing again.",
]


def answer(detector: SharedDetector, text: str) -> list[tuple[Language, float]]:
    # lingua sums in hash order: the same text differs in the 16th digit from one detector to the next
    return [(v.language, round(v.value, 12)) for v in detector.confidence_values(text)]


def test_threads_that_meet_their_first_texts_together_get_the_answers_of_one_thread() -> None:
    # Given a detector of its own, and the answers of one thread
    build = lambda: SharedDetector(LanguageDetectorBuilder.from_languages(*LINGUA_LANGUAGES).build())  # noqa: E731
    expected = [answer(build(), text) for text in SHORT_AND_LONG]
    detector, start = build(), threading.Barrier(8)
    # When eight threads ask at once (the first of each length loads its models while the others wait)
    def ask(i: int) -> list[tuple[Language, float]]:
        start.wait()
        return answer(detector, SHORT_AND_LONG[i % len(SHORT_AND_LONG)])
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(8)))
    # Then
    assert answers == [expected[i % len(SHORT_AND_LONG)] for i in range(8)]

