"""The documentation index: pages and a ranker over them, searched per enquiry, and its JSON form.

Building it from files and keeping it on disk is the loader's work
(``workers.intake.docs_index``); this module only decides, from values.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from classifiers.docs.errors import DocsIndexError, DocsSourceError
from classifiers.docs.pages import Page, Skipped, language_code
from classifiers.docs.rankers import DEFAULT_RANKER, GAP_SCORES, LOADERS, RANKERS, Ranker
from classifiers.docs.suggestions import Signposting, Suggestion
from classifiers.docs.tokens import MAX_QUERY_CHARS

FORMAT = "helpdesk-docs-index"
FORMAT_VERSION = 2  # 2: Snowball stems per page language (bm25s); a version-1 index must be rebuilt
FALLBACK_LANGUAGE = "en"  # the complete documentation; translations cover part of it


@dataclass(frozen=True)
class PageInfo:
    """What the index keeps of a page: enough to suggest it."""

    title: str
    url: str
    language: str | None


def page_text(page: Page) -> str:
    """The text a ranker indexes: the title counts twice, as a page called "Lots extension" is about lots above all."""
    return f"{page.title}\n{page.title}\n{page.text}"


@dataclass(frozen=True)
class DocsIndex:
    """Pages and a ranker over them. Immutable; ``search`` is thread-safe."""

    pages: tuple[PageInfo, ...]
    ranker: Ranker
    gap_score: float
    skipped: tuple[Skipped, ...] = ()
    fallback_language: str = FALLBACK_LANGUAGE
    _by_language: dict[str | None, np.ndarray] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def from_pages(cls, pages: Sequence[Page], *, ranker: str = DEFAULT_RANKER, gap_score: float | None = None,
                   skipped: Iterable[Skipped] = ()) -> DocsIndex:
        """Index ``pages`` with ``ranker``; DocsSourceError when there is none (all skipped, or an empty source)."""
        if ranker not in RANKERS:
            raise ValueError(f"unknown ranker {ranker!r}; known: {', '.join(RANKERS)}")
        if not pages:
            raise DocsSourceError("no pages to index (every page was skipped, or the source is empty)")
        infos = tuple(PageInfo(p.title, p.url, p.language) for p in pages)
        fitted = RANKERS[ranker]([page_text(p) for p in pages], [p.language for p in pages])
        return cls(infos, fitted, GAP_SCORES[ranker] if gap_score is None else gap_score, tuple(skipped))

    def __post_init__(self) -> None:
        languages = np.array([p.language or "" for p in self.pages], dtype=object)
        for code in {p.language for p in self.pages} | {None}:
            self._by_language[code] = np.isin(languages, [code or "", self.fallback_language, ""])

    @property
    def languages(self) -> Counter[str]:
        return Counter(p.language or "?" for p in self.pages)

    def search(self, text: str, k: int = 3, language: str | None = None) -> list[Suggestion]:
        """The ``k`` best pages for ``text``, best first; pages that share no term / n-gram are never returned.

        With ``language`` only pages in that language, in the fallback language (English, which
        is complete) or of unknown language are candidates; a code the index lacks means the fallback.
        """
        if not self.pages or k <= 0 or not text or not text.strip():
            return []
        if language is None:
            scores = self.ranker.scores(text[:MAX_QUERY_CHARS])
        else:
            allowed = self._by_language.get(language_code(language), self._by_language[None])
            scores = np.where(allowed, self.ranker.scores(text[:MAX_QUERY_CHARS], allowed), 0.0)
        best = [i for i in np.argsort(-scores, kind="stable")[:k] if scores[i] > 0.0]
        return [Suggestion(self.pages[i].title, self.pages[i].url, float(scores[i])) for i in best]

    def is_gap(self, suggestions: Sequence[Suggestion]) -> bool:
        """True when nothing matched, or the best match scores below the gap threshold."""
        return not suggestions or max(s.score for s in suggestions) < self.gap_score

    def signpost(self, text: str, k: int = 3, language: str | None = None) -> Signposting:
        """``search`` and ``is_gap`` in one: what the worker stores on a ticket (no suggestions on a gap)."""
        found = self.search(text, k, language)
        gap = self.is_gap(found)
        return Signposting(suggestions=() if gap else tuple(found), gap=gap)

    def with_gap_score(self, gap_score: float) -> DocsIndex:
        return DocsIndex(self.pages, self.ranker, gap_score, self.skipped, self.fallback_language)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "ranker": self.ranker.name,
            "gap_score": self.gap_score,
            "fallback_language": self.fallback_language,
            "pages": [{"title": p.title, "url": p.url, "language": p.language} for p in self.pages],
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            "model": self.ranker.state(),
        }

    @classmethod
    def from_json(cls, data: Any) -> DocsIndex:
        """The index ``to_json`` described; DocsIndexError for anything else."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise DocsIndexError(f"not a documentation index (format {FORMAT!r} expected)")
        if data.get("version") != FORMAT_VERSION:
            raise DocsIndexError(f"index format version {data.get('version')!r}; this code reads {FORMAT_VERSION}: rebuild it with `helpdesk docs index`")
        try:
            pages = tuple(PageInfo(str(p["title"]), str(p["url"]), p.get("language")) for p in data["pages"])
            ranker = LOADERS[data["ranker"]](data["model"], len(pages))
            skipped = tuple(Skipped(str(s["path"]), str(s["reason"])) for s in data.get("skipped", ()))
            return cls(pages, ranker, float(data["gap_score"]), skipped, str(data.get("fallback_language") or FALLBACK_LANGUAGE))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DocsIndexError(f"corrupt documentation index: {type(exc).__name__}: {exc}") from exc
