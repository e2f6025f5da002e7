"""Enquiry type from text n-grams, the rule layer's cues and a static sentence embedding, side by side.

The features of ``classifiers.model.TypeModel`` (TF-IDF word 1–2-grams and character 4-grams, rule cue
scores) with the enquiry's embedding (``classifiers.embeddings``, unit length, scaled by
``EMBEDDING_SCALE``) appended, into one balanced logistic regression with a calibration temperature.
Self-written examples weigh ``SELF_WRITTEN_WEIGHT`` against real enquiries and corrections.

Chosen on the real development set (5 folds grouped by project, 2026-12-05): 0.447 macro-F1 against 0.390
for the n-gram model and 0.344 for the embedding with a linear head alone; scales 0.25–1 and C 3–30 all
scored 0.41–0.45. Pure CPU; the caller embeds (``predict_one`` takes the vector) and saves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from classifiers.embeddings import StaticEmbedder, embedding_text
from classifiers.enquiry_type import KeywordTypeClassifier, Tokens
from classifiers.features import TextFeatures
from classifiers.model import RULE_SCORE_CAP, RULE_WEIGHT, Example, LinearSoftmax, _softmax, fit_softmax, model_tokens

EMBEDDING_SCALE = 0.5  # the embedding's length against each unit-length TF-IDF block
SELF_WRITTEN_WEIGHT = 0.3  # chosen for this model on the real set; the n-gram model has its own (classifiers.model)
C = 10.0


@dataclass(frozen=True)
class WeightedExample:
    example: Example
    weight: float = 1.0


@dataclass
class EmbeddingTypeModel:
    """Rows of ``head.weights``: the n-gram features, then ``rule_types``, then the embedding's dimensions."""

    features: TextFeatures
    rule_types: list[str]
    embedder_name: str
    embedding_dim: int
    embedding_scale: float
    head: LinearSoftmax

    @property
    def classes(self) -> list[str]:
        return self.head.classes

    def rule_vector(self, rule_scores: dict[str, tuple[float, list[str]]]) -> np.ndarray:
        return np.array([RULE_WEIGHT * min(rule_scores[n][0], RULE_SCORE_CAP) / RULE_SCORE_CAP if n in rule_scores else 0.0
                         for n in self.rule_types], dtype=np.float32)

    def predict_one(self, tokens: Tokens, rule_scores: dict[str, tuple[float, list[str]]], embedding: np.ndarray,
                    top: int | None = None) -> list[tuple[str, float]]:
        """Classes with their probabilities, most likely first; ``embedding`` of ``embedding_text(subject, text)``."""
        indices, values = self.features.transform_one(model_tokens(tokens.subject, tokens.text))
        head, rules_at = self.head, self.features.size
        embedding_at = rules_at + len(self.rule_types)
        logits = (values @ head.weights[indices] + self.rule_vector(rule_scores) @ head.weights[rules_at:embedding_at]
                  + (self.embedding_scale * embedding) @ head.weights[embedding_at:] + head.bias)
        return head.ranked(_softmax(logits / head.temperature), top)


def fit_embedding_type_model(examples: Sequence[WeightedExample], rules: KeywordTypeClassifier, rule_types: list[str],
                             embedder: StaticEmbedder, *, scale: float = EMBEDDING_SCALE, c: float = C,
                             seed: int = 0) -> EmbeddingTypeModel:
    labelled = [w for w in examples if w.example.type]
    if len({w.example.type for w in labelled}) < 2:
        raise ValueError("need labelled examples of at least two types to train")
    tokens = [Tokens.of(w.example.subject, w.example.text) for w in labelled]
    features = TextFeatures().fit([model_tokens(t.subject, t.text) for t in tokens])
    model = EmbeddingTypeModel(features, rule_types, embedder.name, embedder.dim, scale,
                               LinearSoftmax([], np.zeros((0, 0)), np.zeros(0), 1.0))
    embeddings = embedder.embed([embedding_text(w.example.subject, w.example.text) for w in labelled])
    rows = sparse.hstack([
        features.transform([model_tokens(t.subject, t.text) for t in tokens]),
        sparse.csr_matrix(np.vstack([model.rule_vector(rules.scores_tokens(t)) for t in tokens])),
        sparse.csr_matrix(scale * embeddings),
    ], format="csr")
    model.head = fit_weighted_softmax(rows, [str(w.example.type) for w in labelled],
                                      np.array([w.weight for w in labelled]), c=c, seed=seed)
    return model


def fit_weighted_softmax(features: sparse.csr_matrix, labels: Sequence[str], weights: np.ndarray, *, c: float,
                         seed: int = 0) -> LinearSoftmax:
    """``classifiers.model.fit_softmax`` with a weight per example (the temperature, too, from weighted out-of-fold fits)."""
    return fit_softmax(features, labels, c=c, weights=weights, seed=seed)
