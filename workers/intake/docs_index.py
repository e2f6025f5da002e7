"""The documentation index on disk — the I/O around the pure ``classifiers.docs``.

    index = build_index(Path("config/docs"))            # read the pages (config.docs_pages) and index them
    save_index(index, settings.resolved_docs_index)
    index = load_index(settings.resolved_docs_index, gap_score=settings.docs_gap_score)

``build_index`` raises DocsSourceError when the source is unusable or gives no
page; ``load_index`` raises DocsIndexError for a file it cannot read or decode.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from classifiers.docs.errors import DocsIndexError
from classifiers.docs.index import DocsIndex
from classifiers.docs.rankers import DEFAULT_RANKER
from config.docs_pages import DEFAULT_MAX_PAGE_CHARS, DEFAULT_MAX_PAGES, read_pages
from config.docs_sources import PageSource


def build_index(
    source: Path,
    *,
    ranker: str = DEFAULT_RANKER,
    max_page_chars: int = DEFAULT_MAX_PAGE_CHARS,
    max_pages: int = DEFAULT_MAX_PAGES,
    gap_score: float | None = None,
    progress: Callable[[PageSource], None] | None = None,
    sources: Sequence[PageSource] | None = None,
) -> DocsIndex:
    """Read every page under ``source`` (a folder or a sitemap .xml) and index it with ``ranker``.

    ``sources``: ``page_sources(source)`` when the caller listed them already; ``progress`` is called
    after each file. Unreadable or excluded pages end up in ``DocsIndex.skipped``.
    """
    pages, skipped = read_pages(source, max_page_chars=max_page_chars, max_pages=max_pages, progress=progress, sources=sources)
    return DocsIndex.from_pages(pages, ranker=ranker, gap_score=gap_score, skipped=skipped)


def save_index(index: DocsIndex, path: Path) -> None:
    """Write the index as JSON, atomically: a worker reloading it never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(index.to_json(), ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    partial.replace(path)


def load_index(path: Path, *, gap_score: float | None = None) -> DocsIndex:
    """Read an index ``save_index`` wrote; ``gap_score`` (when > 0) replaces the index's own threshold."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DocsIndexError(f"{path}: cannot read the documentation index: {exc}") from exc
    index = DocsIndex.from_json(data)
    return index.with_gap_score(gap_score) if gap_score else index
