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
    assert label.value == code and label.confidence > 0.5


def test_too_little_text_falls_back_to_the_first_language(languages: LanguageClassifier) -> None:
    label = languages.classify("ok")
    assert label.value == "en" and label.confidence == 0.0
