"""The real development set: enquiries people wrote to the public trackers of data standards.

``classifiers/data/real/enquiries.jsonl`` holds each enquiry restated in a labeller's own words
(title and opening post, as it arrived), its source link and project, and its labels by two blind
labellers with the adjudicated result (``SOURCES.md`` beside it says how it was made). It is kept
apart from the self-written examples and judges every model:

- ``cross_validate`` trains on the self-written examples (each weighing ``classifiers.model.SELF_WRITTEN_WEIGHT``,
  as ``shipped_examples`` reads them) plus the real enquiries of the other
  folds and predicts each fold, the folds grouped by source project — no project is ever on
  both sides — so the figure says how the desk will do on enquiries about projects it has not seen;
- ``cross_validate_embeddings`` does the same for the candidate model that also reads a static sentence
  embedding (``classifiers.embedding_model``), so ``classify eval --real`` shows both on the same folds;
- ``triage_threshold`` picks the needs-triage confidence from those predictions for a stated
  precision of the labels accepted without a person;
- ``sector_scores`` measures sector from evidence: precision where a sector is given, and how
  often ``unknown`` is answered where the labellers found no evidence.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from classifiers.embedding_model import SELF_WRITTEN_WEIGHT as EMBEDDING_SELF_WRITTEN_WEIGHT, WeightedExample, fit_embedding_type_model
from classifiers.embeddings import StaticEmbedder, embedding_text
from classifiers.enquiry_type import KeywordTypeClassifier, Tokens
from classifiers.evaluation import Evaluation, evaluate, grouped_folds
from classifiers.model import Example, TrainedModels
from classifiers.pipeline import EnquiryClassifier
from config.desk import DeskConfig
from workers.intake.training import RealEnquiry, train

FOLDS = 5
TRIAGE_PRECISION = 0.90  # labels accepted without a person are right at least this often


@dataclass(frozen=True)
class CrossValidation:
    truth: list[str]
    predicted: list[str]
    confidence: list[float]
    model: Evaluation
    baseline: Evaluation  # the keyword rules alone, on the same enquiries
    folds: int


Predictor = Callable[[str, str], tuple[str, float]]  # (subject, text) → (type, confidence)


def cross_validate(desk: DeskConfig, real: Sequence[RealEnquiry], self_written: Sequence[Example],
                   corrections: Sequence[Example] = (), folds: int = FOLDS,
                   on_fold: Callable[[int, int], None] | None = None) -> CrossValidation:
    """Type predictions for every real enquiry by a model that never saw its project."""
    def fit(number: int, train_real: list[Example]) -> Predictor:
        models = train(desk, [*self_written, *train_real], corrections, version=f"cv{number}")
        classifier = EnquiryClassifier(desk, 0.0, models)

        def predict(subject: str, text: str) -> tuple[str, float]:
            label = classifier.classify_type(subject, text)
            return label.value, label.confidence
        return predict

    return _grouped_predictions(desk, real, fit, folds, on_fold)


def cross_validate_embeddings(desk: DeskConfig, real: Sequence[RealEnquiry], self_written: Sequence[Example],
                              embedder: StaticEmbedder, corrections: Sequence[Example] = (), folds: int = FOLDS,
                              on_fold: Callable[[int, int], None] | None = None) -> CrossValidation:
    """As ``cross_validate``, for the model that reads the enquiry's embedding beside its n-grams and cues."""
    rules = KeywordTypeClassifier(desk.taxonomy)

    def fit(number: int, train_real: list[Example]) -> Predictor:
        model = fit_embedding_type_model(embedding_training_set(self_written, train_real, corrections), rules,
                                         list(desk.taxonomy.types), embedder)

        def predict(subject: str, text: str) -> tuple[str, float]:
            tokens = Tokens.of(subject, text)
            best, probability = model.predict_one(tokens, rules.scores_tokens(tokens),
                                                  embedder.embed_one(embedding_text(subject, text)), top=1)[0]
            return best, round(probability, 3)
        return predict

    return _grouped_predictions(desk, real, fit, folds, on_fold)


def embedding_training_set(self_written: Sequence[Example], real: Sequence[Example],
                           corrections: Sequence[Example] = ()) -> list[WeightedExample]:
    """Self-written examples weigh less than real enquiries (they read alike); corrections count double, as in ``train``."""
    return [*(WeightedExample(e, EMBEDDING_SELF_WRITTEN_WEIGHT) for e in self_written), *(WeightedExample(e) for e in real),
            *(WeightedExample(e, 2.0) for e in corrections)]


def _grouped_predictions(desk: DeskConfig, real: Sequence[RealEnquiry], fit: Callable[[int, list[Example]], Predictor],
                         folds: int, on_fold: Callable[[int, int], None] | None) -> CrossValidation:
    truth = [r.example.type or "other" for r in real]
    predicted = [""] * len(real)
    confidence = [0.0] * len(real)
    splits = grouped_folds([r.project for r in real], folds)
    for number, (train_idx, test_idx) in enumerate(splits, start=1):
        predict = fit(number, [real[i].example for i in train_idx])
        for i in test_idx:
            predicted[i], confidence[i] = predict(real[i].example.subject, real[i].example.text)
        if on_fold is not None:
            on_fold(number, len(splits))
    rules = KeywordTypeClassifier(desk.taxonomy)
    baseline = [rules.classify(r.example.subject, r.example.text).value for r in real]
    return CrossValidation(truth, predicted, confidence, evaluate(truth, predicted), evaluate(truth, baseline), len(splits))


@dataclass(frozen=True)
class TriageChoice:
    threshold: float  # below this confidence a ticket needs triage
    precision: float  # of the labels at or above it
    share_triaged: float  # of enquiries below it
    target: float


def triage_threshold(cv: CrossValidation, target: float = TRIAGE_PRECISION) -> TriageChoice:
    """The lowest confidence at which the labels accepted without a person reach ``target`` precision."""
    ranked = sorted(zip(cv.confidence, (p == t for p, t in zip(cv.predicted, cv.truth))), reverse=True)
    best = TriageChoice(1.01, 0.0, 1.0, target)  # nothing meets the target: everything is triaged
    right = 0
    for n, (confidence, correct) in enumerate(ranked, start=1):
        right += correct
        following = ranked[n][0] if n < len(ranked) else -1.0
        if following == confidence:
            continue  # a threshold cannot split equal confidences
        if right / n >= target:
            best = TriageChoice(round(confidence, 4), right / n, 1 - n / len(ranked), target)
    return best


@dataclass(frozen=True)
class SectorScores:
    evaluation: Evaluation
    given: int  # enquiries for which a sector was given (not unknown)
    precision_given: float  # of those, right
    unknown_when_no_evidence: float  # where the labellers found no evidence, the share answered unknown


def sector_scores(classifier: EnquiryClassifier, real: Sequence[RealEnquiry]) -> SectorScores:
    truth = [r.example.sector or "unknown" for r in real]
    predicted = [classifier.sectors.classify("", f"{r.example.subject}\n{r.example.text}").label.value for r in real]
    given = [(p, t) for p, t in zip(predicted, truth) if p != "unknown"]
    no_evidence = [p for p, t in zip(predicted, truth) if t == "unknown"]
    return SectorScores(
        evaluation=evaluate(truth, predicted),
        given=len(given),
        precision_given=sum(p == t for p, t in given) / len(given) if given else 1.0,
        unknown_when_no_evidence=sum(p == "unknown" for p in no_evidence) / len(no_evidence) if no_evidence else 1.0,
    )


def real_metrics(cv: CrossValidation, triage: TriageChoice) -> dict[str, object]:
    """What a trained model records of the real set (the guard of retraining compares these)."""
    return {"real_cv": {**cv.model.to_dict(), "folds": cv.folds}, "real_baseline": cv.baseline.to_dict(),
            "triage": {"threshold": triage.threshold, "precision": round(triage.precision, 4),
                       "share_triaged": round(triage.share_triaged, 4), "target": triage.target}}


def recorded_real_f1(models: TrainedModels | None) -> float | None:
    """The grouped cross-validated macro-F1 a saved model recorded when it was trained, if any."""
    if models is None:
        return None
    real_cv = models.metrics.get("real_cv")
    return float(real_cv["macro_f1"]) if isinstance(real_cv, dict) and "macro_f1" in real_cv else None
