"""The rankers an index can use, what each must do, and the measured default.

Measured with ``python bench/signposting.py`` on ``classifiers/data/docs-relevance.jsonl``
(80 answerable enquiries — 54 en, 10 es, 8 fr, 8 pt — and 12 with no relevant
page) against config/docs with the language filter on, as in the worker::

    ranker  MRR    recall@3  nDCG@3  gap P / R / F1 (threshold)   gap F1 LOO  queries/s
    bm25    0.906  0.869     0.845   0.92 / 0.92 / 0.92 (0.087)   0.92       ~10,900
    lsa     0.928  0.906     0.877   0.80 / 0.67 / 0.73 (0.66)    0.67        ~1,600

BM25 is bm25s with Snowball stems per page language, each word also indexed
as itself (see ``bm25``); it replaced a hand-written BM25 and suffix stripper
(MRR 0.904, recall@3 0.875, nDCG@3 0.854, gap F1 LOO 0.86 at threshold 0.06, ~8,400 queries/s in the same run).

LSA ranks slightly better, but the MRR difference is within noise (a paired
bootstrap's 95% interval spans 0: two or three enquiries), while BM25
separates "no page answers this" far better (its scores of unrelated mail sit
near 0; LSA's character n-grams give every text 0.5+) and is faster. So BM25
is the default. BM25's k1/b are the textbook 1.2 / 0.75; only the gap
thresholds were chosen on this set (the leave-one-out F1 is the honest figure).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from classifiers.docs.bm25 import BM25Ranker


class Ranker(Protocol):
    """Scores every page for a query, in [0, 1]; ``state`` / ``from_state`` round-trip through JSON exactly.

    ``candidates`` (a boolean mask over the pages, or None for all) lets a ranker skip work for
    the other pages; their scores are ignored.
    """

    name: str

    def scores(self, query: str, candidates: np.ndarray | None = None) -> np.ndarray: ...

    def state(self) -> dict[str, Any]: ...


def _fit_lsa(texts: Sequence[str], languages: Sequence[str | None]) -> Ranker:
    from classifiers.docs.lsa import LsaRanker  # noqa: PLC0415 - SciPy and scikit-learn only for an index that uses it

    return LsaRanker.fit(texts, languages)


def _load_lsa(state: dict[str, Any], n_docs: int) -> Ranker:
    from classifiers.docs.lsa import LsaRanker  # noqa: PLC0415

    return LsaRanker.from_state(state, n_docs)


DEFAULT_RANKER = "bm25"  # the winner of bench/signposting.py
# Each ranker's fit(page texts, page languages), and its loader from a saved state and the number of pages.
RANKERS: dict[str, Callable[[Sequence[str], Sequence[str | None]], Ranker]] = {"bm25": BM25Ranker.fit, "lsa": _fit_lsa}
LOADERS: dict[str, Callable[[dict[str, Any], int], Ranker]] = {"bm25": BM25Ranker.from_state, "lsa": _load_lsa}
# Below these best scores an enquiry is a possible documentation gap (chosen in bench/signposting.py).
GAP_SCORES: dict[str, float] = {"bm25": 0.087, "lsa": 0.66}
