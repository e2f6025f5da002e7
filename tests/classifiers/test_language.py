from __future__ import annotations

import pytest

from classifiers.language import LanguageClassifier


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
