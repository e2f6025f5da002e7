"""The real development set: what it holds, that it never holds the independent test sources, and how it is judged."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from classifiers.evaluation import evaluate, grouped_folds
from config.desk import load_desk
from config.settings import load_settings
from workers.intake.real_set import CrossValidation, triage_threshold
from workers.intake.training import REAL_SET, read_real_set

EXCLUDE = Path(__file__).resolve().parents[3] / "shared" / "classification" / "exclude.sha256"


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return [json.loads(line) for line in REAL_SET.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_no_source_of_the_independent_test_set_is_in_the_real_set(records: list[dict]) -> None:
    excluded = {line.strip() for line in EXCLUDE.read_text().splitlines() if line.strip() and not line.startswith("#")}
    hashed = {hashlib.sha256(r["source"].strip().rstrip("/").lower().encode()).hexdigest(): r["id"] for r in records}

    assert len(excluded) > 100
    assert sorted(hashed[h] for h in hashed.keys() & excluded) == []


def test_the_real_set_has_300_enquiries_each_once_with_both_labellings(records: list[dict]) -> None:
    taxonomy = load_desk(load_settings(environ={})).taxonomy

    assert len(records) >= 300
    assert len({r["id"] for r in records}) == len(records)
    assert len({r["source"].rstrip("/").lower() for r in records}) == len(records)
    assert {r["type"] for r in records} <= set(taxonomy.types)
    assert {r["sector"] for r in records} <= set(taxonomy.sectors) | {"unknown"}
    assert all({"a", "b"} <= set(r["labels"]) for r in records)
    assert all(r["sector_evidence"] is None or r["sector_evidence"] in r["text"] for r in records)


def test_the_real_set_reads_as_examples_grouped_by_project() -> None:
    real = read_real_set()

    assert all(r.example.type and r.project for r in real)


def test_given_groups_then_no_group_is_on_both_sides_of_a_fold() -> None:
    groups = ["a", "a", "b", "b", "c", "d", "d", "e", "f", "f"]

    for train, test in grouped_folds(groups, 5):
        assert {groups[i] for i in train}.isdisjoint({groups[i] for i in test})


def test_given_confidences_then_the_triage_threshold_is_the_lowest_that_keeps_90_percent_precision() -> None:
    truth = ["x"] * 10
    predicted = ["x"] * 9 + ["y"]  # the least confident is wrong
    confidence = [0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5]
    cv = CrossValidation(truth, predicted, confidence, evaluate(truth, predicted), evaluate(truth, predicted), 5)

    choice = triage_threshold(cv, target=0.9)

    assert choice.threshold == 0.5  # 9 of 10 right: exactly 90 %
    assert choice.share_triaged == 0.0
