"""The offline "embedding" ranker: TF-IDF of character n-grams (3–5, within words) reduced by TruncatedSVD.

Character n-grams match across inflections and cognates ('validación' ~ 'validation');
the SVD merges n-grams that occur on the same pages. Scores are the cosine
similarity, clipped at 0, so in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import sparse

from classifiers.docs.arrays import decode, encode
from classifiers.docs.tokens import MAX_QUERY_CHARS, content_words


class LsaRanker:
    """Cosine similarity in the SVD space; ``scores`` is thread-safe."""

    name = "lsa"
    NGRAMS = (3, 5)
    MAX_FEATURES = 20_000
    MAX_COMPONENTS = 128

    def __init__(self, vocabulary: list[str], idf: np.ndarray, components: np.ndarray, doc_vectors: np.ndarray) -> None:
        from sklearn.feature_extraction.text import CountVectorizer  # noqa: PLC0415 - only this ranker needs sklearn

        self.vocabulary, self.idf, self.components, self.doc_vectors = vocabulary, idf, components, doc_vectors
        self._counter = CountVectorizer(analyzer="char_wb", ngram_range=self.NGRAMS, preprocessor=content_words, vocabulary=vocabulary, dtype=np.float32)
        self._counter.transform([""])  # validates the vocabulary now, not in concurrent searches

    @classmethod
    def fit(cls, texts: Sequence[str], languages: Sequence[str | None] = ()) -> LsaRanker:
        """Index ``texts``; ``languages`` are not needed: character n-grams match across them."""
        from sklearn.decomposition import TruncatedSVD  # noqa: PLC0415
        from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: PLC0415

        tfidf = TfidfVectorizer(analyzer="char_wb", ngram_range=cls.NGRAMS, preprocessor=content_words, sublinear_tf=True,
                                max_features=cls.MAX_FEATURES, dtype=np.float32)
        matrix = tfidf.fit_transform(texts)
        n_components = max(1, min(cls.MAX_COMPONENTS, matrix.shape[0] - 1, matrix.shape[1] - 1))
        svd = TruncatedSVD(n_components=n_components, random_state=0).fit(matrix)
        vocabulary = tfidf.get_feature_names_out().tolist()
        ranker = cls(vocabulary, tfidf.idf_.astype(np.float32), svd.components_.astype(np.float32), np.zeros((0, 0), np.float32))
        ranker.doc_vectors = ranker._embed(texts)
        return ranker

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        counts = self._counter.transform(texts)
        counts.data = 1.0 + np.log(counts.data)  # sublinear tf, as when fitting
        weighted = counts.multiply(self.idf).tocsr()
        row_norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1))).ravel()
        weighted = sparse.diags(1.0 / np.maximum(row_norms, 1e-12)) @ weighted
        vectors = np.asarray(weighted @ self.components.T, dtype=np.float32)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def scores(self, query: str, candidates: np.ndarray | None = None) -> np.ndarray:
        """Every page's score in [0, 1]; ``candidates`` does not save work here (one embedding for all pages)."""
        if not self.doc_vectors.size:
            return np.zeros(len(self.doc_vectors))
        return np.clip(self.doc_vectors @ self._embed([query[:MAX_QUERY_CHARS]])[0], 0.0, 1.0).astype(np.float64)

    def state(self) -> dict[str, Any]:
        return {"vocabulary": self.vocabulary, "idf": encode(self.idf), "components": encode(self.components),
                "doc_vectors": encode(self.doc_vectors)}

    @classmethod
    def from_state(cls, state: dict[str, Any], n_docs: int) -> LsaRanker:
        vectors = decode(state["doc_vectors"])
        if vectors.shape[0] != n_docs:
            raise ValueError("doc_vectors do not match the pages")
        return cls([str(t) for t in state["vocabulary"]], decode(state["idf"]), decode(state["components"]), vectors)
