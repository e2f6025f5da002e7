from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from classifiers.language import SHORT_BELOW, LanguageClassifier, SharedDetector, fasttext_model_path

DESK = ("en", "es", "fr", "pt")


@pytest.fixture(scope="module")
def languages() -> LanguageClassifier:
    return LanguageClassifier(DESK)


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


def test_a_short_text_after_a_long_one_is_read_with_fasttext_too(languages: LanguageClassifier) -> None:
    # Given a long enquiry first (fastText's identifier alone reads a text of 120 letters or more)
    long_text = ("We get a validation error when we upload our file to the review tool, and the report does not say which "
                 "field of the release is wrong or how we should correct it before publishing again.")
    assert sum(c.isalpha() for c in long_text) >= SHORT_BELOW
    first = languages.classify(long_text)
    assert (first.value, first.reasons) == ("en", ("fastText: en 1.00",))
    # When a subject alone comes next (lingua's trigrams alone said French)
    label = languages.classify("validation report")
    # Then fastText's identifier, weighed with lingua, reads it
    assert label.value == "en"
    assert label.reasons[0].startswith("fastText + lingua: en")


@pytest.mark.parametrize(
    ("text", "code"),
    [("validation report", "en"), ("informe de validación", "es"), ("rapport de validation", "fr"), ("relatório de validação", "pt"),
     ("Problema al publicar los datos", "es"), ("Dúvida sobre o campo de prazo", "pt"), ("Question sur les lots", "fr")],
)
def test_short_texts_in_each_language(languages: LanguageClassifier, text: str, code: str) -> None:
    label = languages.classify(text)
    assert label.value == code
    assert label.confidence > 0.5


def test_confidences_of_a_short_text_add_up_to_one() -> None:
    source, scores = SharedDetector(DESK).scores("informe de validación")
    assert source == "fastText + lingua"
    assert [code for code, _ in scores][0] == "es"
    assert sorted(code for code, _ in scores) == sorted(DESK)
    assert sum(value for _, value in scores) == pytest.approx(1.0)


def test_a_desk_language_fasttext_does_not_know_leaves_short_texts_to_lingua() -> None:
    # Given a desk working in Zulu, which lingua knows and fastText's 176 languages do not
    detector = SharedDetector(("en", "zu"))
    # When
    source, scores = detector.scores("validation report")
    # Then
    assert source == "lingua"
    assert scores[0][0] == "en"


LONG_ELSEWHERE = {
    "ja": "私たちは公共調達データを公開していますが、検証ツールでエラーが出ます。どのフィールドが間違っているのか教えてください。" * 3,
    "ar": "نحن ننشر بيانات المشتريات العامة ولكن أداة التحقق تعرض أخطاء في الحقول ولا نعرف كيف نصححها قبل النشر مرة أخرى " * 2,
    "zh": "我们发布公共采购数据，但是验证工具显示字段错误，我们不知道如何在再次发布之前更正这些错误，请告诉我们应该怎么做才好呢谢谢大家的帮助和支持" * 2,
}


@pytest.mark.parametrize("language", sorted(LONG_ELSEWHERE))
def test_a_long_text_in_another_script_is_recognised_as_none_of_the_desks_languages(languages: LanguageClassifier, language: str) -> None:
    # Given a long enquiry in a language the desk does not work in, whose script none of its languages uses
    text = LONG_ELSEWHERE[language]
    assert sum(c.isalpha() for c in text[:200]) >= SHORT_BELOW
    # When (fastText's ten likeliest name a desk language at noise level, e.g. Spanish at 2e-5 for Japanese)
    source, _ = SharedDetector(DESK).scores(text[:200])
    label = languages.classify(text)
    # Then lingua's trigrams decide, and recognise none of the desk's languages: no confident Spanish, no Spanish team
    assert source == "lingua"
    assert (label.value, label.confidence) == ("en", 0.0)
    assert "no language recognised" in label.reasons[0]


def test_a_long_text_in_another_latin_script_language_is_left_to_lingua() -> None:
    # Given a long enquiry in German, which the desk does not work in
    text = ("Wir veröffentlichen unsere Vergabedaten, aber das Prüfwerkzeug meldet Fehler in den Feldern, und wir wissen "
            "nicht, wie wir sie vor der nächsten Veröffentlichung korrigieren sollen.")
    # When
    source, scores = SharedDetector(DESK).scores(text)
    # Then lingua's trigrams, restricted to the desk's languages, answer (the closest of them), as for every long text before
    assert source == "lingua"
    assert sorted(code for code, _ in scores) == sorted(DESK)


def test_a_long_texts_confidences_come_from_fasttext_and_add_up_to_one() -> None:
    text = ("Nous avons une question sur la publication de nos données de marchés publics : le rapport de validation "
            "signale des erreurs sur les lots et nous ne savons pas comment les corriger.")
    source, scores = SharedDetector(DESK).scores(text)
    assert source == "fastText"
    assert scores[0][0] == "fr"
    assert sorted(code for code, _ in scores) == sorted(DESK)
    assert sum(value for _, value in scores) == pytest.approx(1.0)


def test_the_fasttext_model_ships_with_the_installed_package() -> None:
    path = fasttext_model_path()
    assert path.name == "lid.176.ftz"
    assert path.stat().st_size > 500_000


SHORT_AND_LONG = [
    "validation report",
    "informe de validación",
    "rapport de validation",
    "relatório de validação",
    "We get a validation error when we upload our file to the review tool, and the report does not say which field of "
    "the release is wrong or how we should correct it before publishing again.",
]


def answer(detector: SharedDetector, text: str) -> list[tuple[str, float]]:
    # lingua sums in hash order: the same text differs in the 16th digit from one detector to the next
    return [(code, round(value, 12)) for code, value in detector.scores(text)[1]]


def test_threads_that_meet_their_first_texts_together_get_the_answers_of_one_thread() -> None:
    # Given a detector of its own, and the answers of one thread
    build = lambda: SharedDetector(DESK)  # noqa: E731
    expected = [answer(build(), text) for text in SHORT_AND_LONG]
    detector, start = build(), threading.Barrier(8)
    # When eight threads ask at once (the first of each length loads its models while the others wait)
    def ask(i: int) -> list[tuple[str, float]]:
        start.wait()
        return answer(detector, SHORT_AND_LONG[i % len(SHORT_AND_LONG)])
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(8)))
    # Then
    assert answers == [expected[i % len(SHORT_AND_LONG)] for i in range(8)]

