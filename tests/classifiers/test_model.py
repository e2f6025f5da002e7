from __future__ import annotations

import builtins
import socket

import numpy as np
import pytest

from classifiers.evaluation import evaluate
from classifiers.features import TextFeatures
from classifiers.pipeline import EnquiryClassifier
from classifiers.text import words
from config.desk import load_desk
from config.settings import load_settings
from workers.intake.training import evaluate_examples, shipped_examples, split, train


@pytest.fixture(scope="module")
def desk():  # noqa: ANN201
    return load_desk(load_settings(environ={}))


@pytest.fixture(scope="module")
def trained(desk):  # noqa: ANN001, ANN201
    return train(desk, split(shipped_examples())[0], version="test")


def test_features_are_unit_blocks_and_cache_safe() -> None:
    features = TextFeatures(min_df_chars=1).fit([words("validation errors in tender value"), words("publicar datos abiertos")])
    indices, values = features.transform_one(words("Validation ERRORS, tender: válue"))
    word_block = indices < len(features.word_vocab)
    assert np.isclose(np.linalg.norm(values[word_block]), 1.0)
    assert np.isclose(np.linalg.norm(values[~word_block]), 1.0)
    again = features.transform_one(words("Validation ERRORS, tender: válue"))  # served from the per-word cache
    assert np.array_equal(indices, again[0])
    assert np.allclose(values, again[1])
    empty = features.transform_one(words("zzzz qqqq"))
    assert empty[0].size == 0 or np.all(empty[0] >= len(features.word_vocab))


def test_evaluation_metrics_by_hand() -> None:
    ev = evaluate(["a", "a", "b", "b"], ["a", "b", "b", "b"])
    assert ev.accuracy == 0.75
    assert ev.per_class["a"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert ev.per_class["b"]["precision"] == pytest.approx(2 / 3)
    assert ev.per_class["b"]["recall"] == 1.0
    assert ev.macro_f1 == pytest.approx((2 / 3 + 0.8) / 2)
    assert ev.confusion == [[1, 1], [0, 2]]


def test_model_beats_the_keyword_baseline_on_the_heldout_split(desk, trained) -> None:  # noqa: ANN001
    heldout = split(shipped_examples())[1]
    assert len({e.type for e in heldout}) == len(desk.taxonomy.types)  # every type is represented
    model = evaluate_examples(EnquiryClassifier(desk, 0.45, trained), heldout)["type"]
    baseline = evaluate_examples(EnquiryClassifier(desk, 0.45), heldout)["type"]
    assert model.macro_f1 >= 0.75
    assert model.macro_f1 >= baseline.macro_f1 + 0.1


def test_model_confidence_is_calibrated(desk, trained) -> None:  # noqa: ANN001
    """Expected calibration error on the held-out split: confidence should mean what it says."""
    classifier = EnquiryClassifier(desk, 0.45, trained)
    heldout = split(shipped_examples())[1]
    labels = [classifier.classify_type(e.subject, e.text) for e in heldout]
    confidence = np.array([label.confidence for label in labels])
    correct = np.array([label.value == e.type for label, e in zip(labels, heldout)], dtype=float)
    bins = np.minimum((confidence * 5).astype(int), 4)
    ece = sum(abs(confidence[bins == b].mean() - correct[bins == b].mean()) * (bins == b).mean() for b in range(5) if (bins == b).any())
    assert ece < 0.15


def test_every_result_is_explained(desk, trained) -> None:  # noqa: ANN001
    result = EnquiryClassifier(desk, 0.45, trained).classify(
        subject="Errores de validación", text="La herramienta marca errores en tender/value.", sender="ana@minhacienda.gob.cl"
    )
    assert result.type.reasons[0].startswith("model test:")
    assert result.sector.reasons == ("domain minhacienda.gob.cl matches *.gob.* → government",)
    assert result.language.value == "es"


def test_classification_performs_no_io(desk, trained, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    classifier = EnquiryClassifier(desk, 0.45, trained)
    classifier.classify(subject="warm-up", text="warm up the caches", sender="a@b.org")

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("I/O in the classification hot path")

    monkeypatch.setattr(builtins, "open", forbidden)
    monkeypatch.setattr(socket.socket, "connect", forbidden)
    for example in split(shipped_examples())[1][:40]:
        classifier.classify(subject=example.subject, text=example.text, sender=example.sender)


def test_low_confidence_means_needs_triage(desk, trained) -> None:  # noqa: ANN001
    classifier = EnquiryClassifier(desk, 0.99, trained)
    assert classifier.classify(subject="hello", text="hi there", sender="a@gmail.com").needs_triage


@pytest.mark.parametrize("subject, text", [
    ("Validate JSON", "How do I validate my JSON against the schema? I want to publish it next week."),
    ("Question", "Where can I download the data? We publish a report about it."),
])
def test_given_a_model_decision_then_reasons_name_only_the_chosen_and_runner_up_types_cues(desk, trained, subject, text) -> None:  # noqa: ANN001
    label = EnquiryClassifier(desk, 0.45, trained).classify_type(subject, text)
    named = {reason.split(":")[0] for reason in label.reasons[1:]}
    model_line = label.reasons[0]
    runner = model_line.split("(next: ")[1].split()[0]

    assert named <= {f"cues for {label.value}", f"cues for the runner-up {runner}"}


def test_given_the_shipped_examples_when_read_then_each_weighs_less_than_a_real_enquiry() -> None:
    from classifiers.model import SELF_WRITTEN_WEIGHT  # noqa: PLC0415
    from workers.intake.training import read_real_set  # noqa: PLC0415

    assert {e.weight for e in shipped_examples()} == {SELF_WRITTEN_WEIGHT}
    assert {r.example.weight for r in read_real_set()} == {1.0}
    assert SELF_WRITTEN_WEIGHT < 1.0


def test_given_two_labels_for_the_same_words_when_one_weighs_more_then_the_type_model_follows_it(desk) -> None:  # noqa: ANN001
    from classifiers.enquiry_type import KeywordTypeClassifier, Tokens  # noqa: PLC0415
    from classifiers.model import Example, fit_type_model  # noqa: PLC0415

    rules = KeywordTypeClassifier(desk.taxonomy)
    text = "quarterly figures for the northern region please"
    examples = [*(Example(text, type="data_use") for _ in range(3)), *(Example(text, type="other", weight=0.05) for _ in range(3)),
                *(Example(f"unrelated words number {i}", type="other") for i in range(3))]

    model = fit_type_model(examples, rules, list(desk.taxonomy.types))

    tokens = Tokens.of("", text)
    assert model.predict_one(tokens, rules.scores_tokens(tokens), top=1)[0][0] == "data_use"


def test_given_logits_too_timid_for_their_accuracy_then_the_temperature_goes_below_one_fifth() -> None:
    from classifiers.model import _best_temperature  # noqa: PLC0415

    truth = np.arange(200) % 4
    logits = np.full((200, 4), 0.0)
    logits[np.arange(200), truth] = 0.3  # always right, barely ahead

    assert _best_temperature(logits, truth) < 0.2


def test_given_cues_of_two_types_then_the_reasons_name_the_chosen_types_cues_and_the_runner_ups_apart(
    desk, trained,  # noqa: ANN001
) -> None:
    label = EnquiryClassifier(desk, 0.45, trained).classify_type(
        "Workshop on publishing", "Could you run a training workshop for our team on how to publish our data?")
    runner = label.reasons[0].split("(next: ")[1].split()[0]

    assert label.value == "training"
    assert any(r.startswith("cues for training: ") and "'workshop'" in r for r in label.reasons)
    assert any(r.startswith(f"cues for the runner-up {runner}: ") for r in label.reasons)


def test_given_examples_all_of_one_weight_then_the_model_is_the_same_as_at_weight_one(desk) -> None:  # noqa: ANN001
    import dataclasses  # noqa: PLC0415

    from classifiers.enquiry_type import KeywordTypeClassifier  # noqa: PLC0415
    from classifiers.model import fit_type_model  # noqa: PLC0415

    rules, types = KeywordTypeClassifier(desk.taxonomy), list(desk.taxonomy.types)
    light = [e for e in split(shipped_examples())[0] if e.type in {"training", "tools", "policy"}][:60]

    light_model = fit_type_model(light, rules, types)
    full_model = fit_type_model([dataclasses.replace(e, weight=1.0) for e in light], rules, types)

    assert np.allclose(light_model.head.weights, full_model.head.weights)


def test_given_saved_models_when_read_back_then_the_vocabulary_is_the_same_and_a_vocabulary_of_numbers_is_refused(trained) -> None:  # noqa: ANN001
    from classifiers.errors import ModelFormatError  # noqa: PLC0415
    from classifiers.model import models_from_data, models_to_data  # noqa: PLC0415

    arrays, meta = models_to_data(trained)
    back = models_from_data(arrays, meta).type_model.features
    features = trained.type_model.features
    assert (back.word_vocab, back.char_vocab) == (features.word_vocab, features.char_vocab)
    assert {type(gram) for gram in (*back.word_vocab, *back.char_vocab)} == {str}
    arrays["type.words.lines"] = np.arange(len(features.word_vocab))
    with pytest.raises(ModelFormatError):
        models_from_data(arrays, meta)


def _earlier(arrays: dict) -> dict:
    """The arrays as the code before 2026-12-07's seventh session saved them: vocabularies as arrays of strings only."""
    return {name: array for name, array in arrays.items() if not name.endswith(".lines")}


def test_given_a_model_saved_in_the_earlier_format_when_read_then_its_vocabulary_is_the_same(trained) -> None:  # noqa: ANN001
    # A desk's saved model keeps loading after the upgrade (no retraining at its first start)
    from classifiers.errors import ModelFormatError  # noqa: PLC0415
    from classifiers.model import models_from_data, models_to_data  # noqa: PLC0415

    arrays, meta = models_to_data(trained)
    features = trained.type_model.features
    back = models_from_data(_earlier(arrays), meta).type_model.features
    assert (back.word_vocab, back.char_vocab) == (features.word_vocab, features.char_vocab)
    earlier = _earlier(arrays)
    earlier["type.words"] = np.arange(len(features.word_vocab))
    with pytest.raises(ModelFormatError):
        models_from_data(earlier, meta)


def test_given_a_model_saved_now_then_a_worker_of_the_code_before_reads_the_vocabulary_it_always_read(trained) -> None:  # noqa: ANN001
    # A rolling deploy or a rollback: workers of the code before read `type.words` and `type.chars` as arrays of strings
    # (and skipped, then replaced by a model trained afresh, any file whose vocabulary they could not read)
    from classifiers.model import models_to_data  # noqa: PLC0415

    arrays, _ = models_to_data(trained)
    features = trained.type_model.features
    for part, vocab in (("words", features.word_vocab), ("chars", features.char_vocab)):
        assert arrays[f"type.{part}"].dtype.kind == "U"
        assert arrays[f"type.{part}"].tolist() == sorted(vocab, key=vocab.__getitem__)


def test_given_saved_models_then_the_vocabulary_is_read_from_its_lines_and_lines_not_utf8_are_refused(trained) -> None:  # noqa: ANN001
    from classifiers.errors import ModelFormatError  # noqa: PLC0415
    from classifiers.model import models_from_data, models_to_data, superseded  # noqa: PLC0415

    arrays, meta = models_to_data(trained)
    assert arrays["type.words.lines"].dtype == np.uint8
    assert superseded("type.words", list(arrays))  # so the store leaves the 16 MB array of strings unread
    assert not superseded("type.idf", list(arrays))
    del arrays["type.words"]  # as the store hands them over
    assert models_from_data(arrays, meta).type_model.features.word_vocab == trained.type_model.features.word_vocab
    arrays["type.words.lines"] = np.frombuffer(b"caf\xe9\nbar", dtype=np.uint8)  # Latin-1, not UTF-8
    with pytest.raises(ModelFormatError, match="not UTF-8"):
        models_from_data(arrays, meta)
