"""The BM25 ranker: bm25s (Lucene's variant) over ``tokens``, each page and the query stemmed in the page's language.

Each word is indexed as its stem and, when stemming changed it, as itself
(``tokens.unstemmed``). Scores are in [0, 1]: a page's BM25 score divided by
the best score a page could reach for the query's distinct terms (the sum of
their idf, as Lucene's term frequency part tends to 1), a stem no page
contains counting with the highest idf, so mail about something else scores
low on every page.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import bm25s
import numpy as np
from scipy import sparse

from classifiers.docs.tokens import folded, stemmer_name, stems, tokens, unstemmed, words

# bm25s sets its own logger to DEBUG on import; give the decision back to the application's logging set-up.
logging.getLogger("bm25s").setLevel(logging.NOTSET)


class BM25Ranker:
    """Okapi BM25 with the textbook k1 = 1.2, b = 0.75; ``scores`` is thread-safe."""

    name = "bm25"

    def __init__(self, vocabulary: list[str], counts: sparse.csr_matrix, stemmers: Sequence[str], *,
                 k1: float = 1.2, b: float = 0.75) -> None:
        """``counts``: pages × ``vocabulary`` term counts; ``stemmers``: each page's Snowball algorithm."""
        self.vocabulary, self.counts, self.stemmers, self.k1, self.b = vocabulary, counts.tocsr(), list(stemmers), k1, b
        self._term_ids = {term: i for i, term in enumerate(vocabulary)}
        n_docs = self.counts.shape[0]
        self._bm25 = bm25s.BM25(k1=k1, b=b, method="lucene")
        corpus = [np.repeat(row.indices, row.data.astype(np.int64)).tolist() for row in self.counts]
        self._bm25.index((corpus, dict(self._term_ids)), create_empty_token=False, show_progress=False)
        doc_freq = np.bincount(self.counts.indices, minlength=len(vocabulary))
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
        rows, cols, data = [], [], []
        for row, counted in enumerate(per_doc):
            for term, count in counted.items():
                rows.append(row), cols.append(ids[term]), data.append(count)
        matrix = sparse.csr_matrix((data, (rows, cols)), shape=(len(texts), len(vocabulary)), dtype=np.float64)
        return cls(vocabulary, matrix, stemmers, **params)

    def scores(self, query: str, candidates: np.ndarray | None = None) -> np.ndarray:
        """Every page's score in [0, 1], the query stemmed as that page was; 0 outside ``candidates`` (a mask)."""
        found = words(query)
        words_folded = folded(found)
        result = np.zeros(self.counts.shape[0])
        for name, pages in self._pages.items():
            if candidates is not None and not candidates[pages].any():
                continue  # stemming in a language none of the candidate pages is in would be wasted
            stemmed = stems(found, name)
            result[pages] = self._normalised(set(stemmed), set(unstemmed(words_folded, stemmed)))[pages]
        return result

    def _normalised(self, stemmed: set[str], unstemmed: set[str]) -> np.ndarray:
        ids = sorted(self._term_ids[t] for t in stemmed | unstemmed if t in self._term_ids)
        if not ids:
            return np.zeros(self.counts.shape[0])
        raw = self._bm25.get_scores_from_ids(ids).astype(np.float64)
        # A word counts as unseen only when no page has its stem: its own form missing is no sign of another subject.
        unseen = sum(1 for t in stemmed if t not in self._term_ids)
        return raw / (self._idf[ids].sum() + unseen * self._unseen_idf)

    def state(self) -> dict[str, Any]:
        return {"k1": self.k1, "b": self.b, "vocabulary": self.vocabulary, "stemmers": self.stemmers,
                "indptr": self.counts.indptr.tolist(), "indices": self.counts.indices.tolist(),
                "counts": self.counts.data.astype(int).tolist()}

    @classmethod
    def from_state(cls, state: dict[str, Any], n_docs: int) -> BM25Ranker:
        vocabulary = [str(t) for t in state["vocabulary"]]
        stemmers = [str(s) for s in state["stemmers"]]
        if len(stemmers) != n_docs:
            raise ValueError("stemmers do not match the pages")
        counts = sparse.csr_matrix((np.asarray(state["counts"], dtype=np.float64), np.asarray(state["indices"], dtype=np.int64),
                                    np.asarray(state["indptr"], dtype=np.int64)), shape=(n_docs, len(vocabulary)))
        return cls(vocabulary, counts, stemmers, k1=float(state["k1"]), b=float(state["b"]))

