"""Cross-validation on the real set, grouped by project: the current model and the candidate with embeddings."""

from __future__ import annotations

import pytest

from classifiers.embedding_model import SELF_WRITTEN_WEIGHT
from classifiers.embeddings import load_wordllama
from classifiers.model import Example
from config.desk import DeskConfig, load_desk
from config.settings import load_settings
from workers.intake.real_set import CrossValidation, cross_validate, cross_validate_embeddings, embedding_training_set
from workers.intake.training import RealEnquiry, shipped_examples


@pytest.fixture(scope="module")
def desk() -> DeskConfig:
    return load_desk(load_settings(environ={}))


@pytest.fixture(scope="module")
def small_set() -> tuple[list[RealEnquiry], list[Example]]:
    """Shipped examples of three types: 36 as 'real' enquiries of six projects, 45 others as self-written."""
    by_type = {t: [e for e in shipped_examples() if e.type == t] for t in ("tools", "training", "data_use")}
    mixed = [e for group in zip(*by_type.values()) for e in group]  # tools, training, data_use, tools, …
    real = [RealEnquiry(f"r{i}", f"https://example.org/{i}", f"project-{i % 6}", e) for i, e in enumerate(mixed[:36])]
    return real, mixed[36:81]


def check(cv: CrossValidation, real: list[RealEnquiry]) -> None:
    assert cv.folds == 3
    assert cv.truth == [r.example.type for r in real]
    assert set(cv.truth) == {"tools", "training", "data_use"}
    assert all(p in {"tools", "training", "data_use"} for p in cv.predicted)  # every enquiry predicted once
    assert all(0.0 <= c <= 1.0 for c in cv.confidence)
    assert cv.model.count == cv.baseline.count == len(real)
    assert cv.model.macro_f1 > cv.baseline.macro_f1 - 0.2  # learned from its folds: not far below the rules


def test_the_current_model_is_cross_validated_by_project(desk: DeskConfig, small_set: tuple[list[RealEnquiry], list[Example]]) -> None:
    real, self_written = small_set
    seen: list[tuple[int, int]] = []

    cv = cross_validate(desk, real, self_written, folds=3, on_fold=lambda n, total: seen.append((n, total)))

    check(cv, real)
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_the_candidate_with_embeddings_is_cross_validated_on_the_same_folds(
    desk: DeskConfig, small_set: tuple[list[RealEnquiry], list[Example]]
) -> None:
    real, self_written = small_set

    cv = cross_validate_embeddings(desk, real, self_written, load_wordllama(), folds=3)

    check(cv, real)
    assert cv.baseline == cross_validate(desk, real, self_written, folds=3).baseline


def test_self_written_examples_weigh_less_than_real_enquiries_and_corrections_double() -> None:
    written, real, corrected = Example("a", type="tools"), Example("b", type="schema"), Example("c", type="policy")

    weighted = embedding_training_set([written], [real], [corrected])

    assert [(w.example.text, w.weight) for w in weighted] == [("a", SELF_WRITTEN_WEIGHT), ("b", 1.0), ("c", 2.0)]
