"""Evaluation of a classifier against true labels: per-class precision, recall, F1, macro-F1, accuracy, confusion."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Evaluation:
    labels: list[str]
    per_class: dict[str, dict[str, float]]  # label → precision, recall, f1, support
    macro_f1: float
    accuracy: float
    confusion: list[list[int]]  # rows: true label, columns: predicted, in ``labels`` order
    count: int

    def to_dict(self) -> dict[str, object]:
        return {
            "count": self.count,
            "accuracy": round(self.accuracy, 4),
            "macro_f1": round(self.macro_f1, 4),
            "per_class": {k: {m: round(v, 4) if isinstance(v, float) else v for m, v in d.items()} for k, d in self.per_class.items()},
            "labels": self.labels,
            "confusion": self.confusion,
        }


def evaluate(truth: Sequence[str], predicted: Sequence[str]) -> Evaluation:
    if len(truth) != len(predicted):
        raise ValueError("truth and predictions differ in length")
    # scikit-learn is imported by the evaluation, not with the module: workers import this one and never evaluate
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support  # noqa: PLC0415

    labels = sorted(set(truth) | set(predicted))
    precision, recall, f1, support = precision_recall_fscore_support(truth, predicted, labels=labels, zero_division=0)
    per_class = {
        label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for label, p, r, f, s in zip(labels, precision, recall, f1, support)
    }
    present = sorted(set(truth))  # macro-F1 over the classes that occur in the truth
    return Evaluation(
        labels=labels,
        per_class=per_class,
        macro_f1=float(f1_score(truth, predicted, labels=present, average="macro", zero_division=0)) if truth else 0.0,
        accuracy=float(accuracy_score(truth, predicted)) if truth else 0.0,
        confusion=confusion_matrix(truth, predicted, labels=labels).tolist() if truth else [],
        count=len(truth),
    )


def grouped_folds(groups: Sequence[str], folds: int) -> list[tuple[list[int], list[int]]]:
    """(train, test) index lists of ``folds`` folds in which no group is on both sides (groups: source projects)."""
    from sklearn.model_selection import GroupKFold  # noqa: PLC0415

    n = min(folds, len(set(groups)))
    if n < 2:
        raise ValueError("cross-validation by group needs at least two groups")
    indices = list(range(len(groups)))
    return [(list(train), list(test)) for train, test in GroupKFold(n_splits=n).split(indices, groups=list(groups))]
