"""The BM25 ranker: bm25s (Lucene's variant) over ``tokens``, each page and the query stemmed in the page's language.

Each word is indexed as its stem and, when stemming changed it, as itself
(``tokens.unstemmed``). Scores are in [0, 1]: a page's BM25 score divided by
the best score a page could reach for the query's distinct terms (the sum of
their idf, as Lucene's term frequency part tends to 1), a stem no page
contains counting with the highest idf, so mail about something else scores
low on every page.

Indexing and searching are apart. When the index is built, bm25s weighs every
(page, term) pair — idf × Lucene's term-frequency part, in float32 — and the
index keeps these weights term by term (``TermWeights``, the CSC arrays bm25s
itself holds). A search adds up the query terms' weights as bm25s's numpy
backend does — the same float32 values in the same order, so the same scores —
in plain numpy: loading a saved index imports neither bm25s nor SciPy (a fifth
of a second of a worker's start). An index saved before the weights were kept
has them computed by bm25s as it loads.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from classifiers.docs.arrays import decode, encode
from classifiers.docs.tokens import folded, stemmer_name, stems, tokens, unstemmed, words


@dataclass(frozen=True)
class TermCounts:
    """How often each term occurs on each page: a pages × terms matrix in CSR form (``indices`` sorted within a row)."""

    indptr: np.ndarray  # int64, one more than the pages
    indices: np.ndarray  # int64 term ids
    counts: np.ndarray  # int64
    n_terms: int

    @classmethod
    def of(cls, rows: Sequence[Iterable[tuple[int, int]]], n_terms: int) -> TermCounts:
        """From each page's (term id, count) pairs."""
        indptr, indices, counts = [0], [], []
        for row in rows:
            for term, count in sorted(row):
                indices.append(term)
                counts.append(count)
            indptr.append(len(indices))
        return cls.checked(indptr, indices, counts, n_terms)

    @classmethod
    def checked(cls, indptr: Any, indices: Any, counts: Any, n_terms: int) -> TermCounts:
        """ValueError unless the arrays describe a matrix with ``n_terms`` columns (as a saved state must)."""
        made = cls(np.asarray(indptr, dtype=np.int64), np.asarray(indices, dtype=np.int64), np.asarray(counts, dtype=np.int64), n_terms)
        if made.indptr.ndim != 1 or len(made.indptr) < 1 or made.indptr[0] != 0 or np.any(np.diff(made.indptr) < 0):
            raise ValueError("indptr is not a row index")
        if not made.indptr[-1] == len(made.indices) == len(made.counts):
            raise ValueError("indptr, indices and counts disagree")
        if len(made.indices) and (made.indices.min() < 0 or made.indices.max() >= n_terms):
            raise ValueError("a term id outside the vocabulary")
        return made

    @property
    def n_pages(self) -> int:
        return len(self.indptr) - 1

    def page_terms(self) -> list[list[int]]:
        """Each page as its term ids, each repeated as often as it occurs (what bm25s indexes)."""
        rows = zip(self.indptr[:-1], self.indptr[1:], strict=True)
        return [np.repeat(self.indices[start:end], self.counts[start:end]).tolist() for start, end in rows]


@dataclass(frozen=True)
class TermWeights:
    """Each term's BM25 weight on each page that has it (float32), term by term: a pages × terms matrix in CSC form."""

    weights: np.ndarray  # float32
    pages: np.ndarray  # int32 page ids
    indptr: np.ndarray  # int64, one more than the terms

    @classmethod
    def computed(cls, counts: TermCounts, k1: float, b: float) -> TermWeights:
        """bm25s's weights for ``counts`` (imports bm25s, and with it SciPy: indexing, or an index saved without weights)."""
        import bm25s  # noqa: PLC0415

        # bm25s sets its own logger to DEBUG on import; give the decision back to the application's logging set-up.
        logging.getLogger("bm25s").setLevel(logging.NOTSET)
        model = bm25s.BM25(k1=k1, b=b, method="lucene")  # the numpy backend, which ``scores`` adds up as
        model.index((counts.page_terms(), {i: i for i in range(counts.n_terms)}), create_empty_token=False, show_progress=False)
        return cls.checked(model.scores["data"], model.scores["indices"], model.scores["indptr"], counts)

    @classmethod
    def checked(cls, weights: Any, pages: Any, indptr: Any, counts: TermCounts) -> TermWeights:
        """ValueError unless these are weights of exactly the (page, term) pairs ``counts`` has."""
        made = cls(np.asarray(weights, dtype=np.float32), np.asarray(pages, dtype=np.int32), np.asarray(indptr, dtype=np.int64))
        if made.indptr.shape != (counts.n_terms + 1,) or made.indptr[0] != 0 or not made.indptr[-1] == len(made.pages) == len(made.weights):
            raise ValueError("the weights do not match the vocabulary")
        if not np.array_equal(np.diff(made.indptr), np.bincount(counts.indices, minlength=counts.n_terms)):
            raise ValueError("the weights do not match the term counts")
        if len(made.pages) and (made.pages.min() < 0 or made.pages.max() >= counts.n_pages):
            raise ValueError("a page id outside the index")
        return made

    def scores(self, term_ids: Sequence[int], n_pages: int) -> np.ndarray:
        """Each page's BM25 score for ``term_ids`` (float32): their weights added term after term, as bm25s does."""
        result = np.zeros(n_pages, dtype=np.float32)
        for term in term_ids:
            start, end = self.indptr[term], self.indptr[term + 1]
            np.add.at(result, self.pages[start:end], self.weights[start:end])
        return result

    def state(self) -> dict[str, Any]:
        return {"weights": encode(self.weights), "pages": encode(self.pages, "<i4"), "indptr": encode(self.indptr, "<i4")}

    @classmethod
    def from_state(cls, state: dict[str, Any], counts: TermCounts) -> TermWeights:
        return cls.checked(decode(state["weights"]), decode(state["pages"]), decode(state["indptr"]), counts)


class BM25Ranker:
    """Okapi BM25 with the textbook k1 = 1.2, b = 0.75; ``scores`` is thread-safe."""

    name = "bm25"

    def __init__(self, vocabulary: list[str], counts: TermCounts, stemmers: Sequence[str], *,
                 k1: float = 1.2, b: float = 0.75, weights: TermWeights | None = None) -> None:
        """``counts``: pages × ``vocabulary`` term counts; ``stemmers``: each page's Snowball algorithm;
        ``weights``: bm25s's for these counts, k1 and b (computed when not given)."""
        if counts.n_terms != len(vocabulary) or len(stemmers) != counts.n_pages:
            raise ValueError("the counts do not match the vocabulary or the pages")
        self.vocabulary, self.counts, self.stemmers, self.k1, self.b = vocabulary, counts, list(stemmers), k1, b
        self.weights = weights if weights is not None else TermWeights.computed(counts, k1, b)
        self._term_ids = {term: i for i, term in enumerate(vocabulary)}
        n_docs = counts.n_pages
        doc_freq = np.bincount(counts.indices, minlength=len(vocabulary))
        self._idf = np.log1p((n_docs - doc_freq + 0.5) / (doc_freq + 0.5))  # Lucene's idf, the one bm25s weights with
        self._unseen_idf = math.log1p((n_docs + 0.5) / 0.5)
        by_stemmer = np.array(self.stemmers, dtype=object)
        self._pages = {name: np.flatnonzero(by_stemmer == name) for name in set(self.stemmers)}
        for name in self._pages:
            stems([], name)  # an unknown algorithm (a corrupt saved index) fails here, not in a search

    @classmethod
    def fit(cls, texts: Sequence[str], languages: Sequence[str | None], **params: float) -> BM25Ranker:
        """Index ``texts``, each stemmed in its language (``languages``, one per text)."""
        stemmers = [stemmer_name(language) for language in languages]
        per_doc = [Counter(tokens(text, language)) for text, language in zip(texts, languages, strict=True)]
        vocabulary = sorted(set().union(*per_doc))
        ids = {term: i for i, term in enumerate(vocabulary)}
        counts = TermCounts.of([[(ids[term], count) for term, count in counted.items()] for counted in per_doc], len(vocabulary))
        return cls(vocabulary, counts, stemmers, **params)

    def scores(self, query: str, candidates: np.ndarray | None = None) -> np.ndarray:
        """Every page's score in [0, 1], the query stemmed as that page was; 0 outside ``candidates`` (a mask)."""
        found = words(query)
        words_folded = folded(found)
        result = np.zeros(self.counts.n_pages)
        for name, pages in self._pages.items():
            if candidates is not None and not candidates[pages].any():
                continue  # stemming in a language none of the candidate pages is in would be wasted
            stemmed = stems(found, name)
            result[pages] = self._normalised(set(stemmed), set(unstemmed(words_folded, stemmed)))[pages]
        return result

    def _normalised(self, stemmed: set[str], unstemmed: set[str]) -> np.ndarray:
        ids = sorted(self._term_ids[t] for t in stemmed | unstemmed if t in self._term_ids)
        if not ids:
            return np.zeros(self.counts.n_pages)
        raw = self.weights.scores(ids, self.counts.n_pages).astype(np.float64)
        # A word counts as unseen only when no page has its stem: its own form missing is no sign of another subject.
        unseen = sum(1 for t in stemmed if t not in self._term_ids)
        return raw / (self._idf[ids].sum() + unseen * self._unseen_idf)

    def state(self) -> dict[str, Any]:
        return {"k1": self.k1, "b": self.b, "vocabulary": self.vocabulary, "stemmers": self.stemmers,
                "indptr": self.counts.indptr.tolist(), "indices": self.counts.indices.tolist(),
                "counts": self.counts.counts.tolist(), "weights": self.weights.state()}

    @classmethod
    def from_state(cls, state: dict[str, Any], n_docs: int) -> BM25Ranker:
        vocabulary = [str(t) for t in state["vocabulary"]]
        stemmers = [str(s) for s in state["stemmers"]]
        if len(stemmers) != n_docs:
            raise ValueError("stemmers do not match the pages")
        counts = TermCounts.checked(state["indptr"], state["indices"], state["counts"], len(vocabulary))
        if counts.n_pages != n_docs:
            raise ValueError("the term counts do not match the pages")
        k1, b = float(state["k1"]), float(state["b"])
        weights = TermWeights.from_state(state["weights"], counts) if "weights" in state else None  # None: saved before weights were kept
        return cls(vocabulary, counts, stemmers, k1=k1, b=b, weights=weights)
