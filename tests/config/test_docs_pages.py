"""The documentation loader: files of a folder or a sitemap become page values, or skipped pages with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from classifiers.docs.errors import DocsSourceError
from classifiers.docs.pages import Page, Skipped
from config.docs_pages import read_page, read_pages
from config.docs_sources import PageSource, page_sources


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_read_pages_gives_pages_and_the_skipped_with_their_reasons(tmp_path: Path) -> None:
    # Given
    write(tmp_path / "es" / "monedas.md", "# Monedas\n\nCada monto necesita un código de moneda.\n")
    write(tmp_path / "draft.md", "---\nindex: false\n---\nNot ready.\n")
    # When
    pages, skipped = read_pages(tmp_path)
    # Then
    assert pages == [Page(title="Monedas", url="es/monedas.md", language="es", text=pages[0].text)]
    assert "código de moneda" in pages[0].text
    assert skipped == [Skipped("draft.md", "index: false")]


def test_read_pages_stops_at_the_page_limit_and_reports_progress(tmp_path: Path) -> None:
    # Given
    for name in ("a", "b", "c"):
        write(tmp_path / f"{name}.md", f"# {name}\n\nPage {name} about tenders.\n")
    seen: list[PageSource] = []
    # When
    pages, skipped = read_pages(tmp_path, max_pages=2, progress=seen.append)
    # Then
    assert [p.url for p in pages] == ["a.md", "b.md"]
    assert skipped == [Skipped("c.md", "over the limit of 2 pages")]
    assert len(seen) == 3


def test_page_sources_lists_visible_pages_in_a_stable_order(tmp_path: Path) -> None:
    # Given
    write(tmp_path / "b.html", "<title>B</title>")
    write(tmp_path / "a.md", "# A")
    write(tmp_path / ".hidden" / "c.md", "# C")
    write(tmp_path / "notes.txt", "not a page")
    # When
    found = page_sources(tmp_path)
    # Then
    assert [s.label for s in found] == ["a.md", "b.html"]


def test_a_source_that_is_neither_folder_nor_sitemap_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(DocsSourceError):
        page_sources(write(tmp_path / "page.md", "# Not a folder"))


def test_a_sitemap_entry_without_a_local_file_is_skipped_when_read(tmp_path: Path) -> None:
    # Given
    sitemap = write(tmp_path / "sitemap.xml", '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
                                             "<url><loc>https://docs.example/en/missing/</loc></url></urlset>")
    # When
    [source] = page_sources(sitemap)
    # Then
    assert source.url == "https://docs.example/en/missing/"
    assert read_page(source) == Skipped(source.label, "no local file")
