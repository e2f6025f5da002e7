"""Where a desk's documentation pages are: the files of a folder, or the entries of a sitemap.

- **A folder** (searched recursively; hidden files and folders skipped): its
  ``.md`` / ``.markdown`` and ``.html`` / ``.htm`` files.
- **A sitemap file** (``*.xml``, the sitemaps.org format). Each ``<url><loc>``
  names a page; nothing is fetched over the network (indexing is offline and
  repeatable). A ``loc`` that is a relative path or ``file:`` URL is read
  relative to the sitemap's folder; an ``http(s)`` URL is looked up under that
  folder by its path (``/en/faq/`` → ``en/faq/index.html``, ``en/faq.html``,
  ``en/faq.md``, …). The suggested url is the ``http(s)`` ``loc`` itself, else
  the page's own url. A non-standard ``<title>`` child of ``<url>`` overrides
  the page's title. An entry with no local file is listed all the same: reading
  it skips it, with the reason.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from classifiers.docs.errors import DocsSourceError

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
MAX_SITEMAP_BYTES = 50 * 1024 * 1024  # the sitemaps.org limit


@dataclass(frozen=True)
class PageSource:
    """One file to read: from a folder walk, or from a sitemap entry (with its loc and title)."""

    path: Path
    root: Path
    url: str | None = None
    title: str | None = None

    @property
    def label(self) -> str:
        """The path relative to the folder or sitemap: how the page is named when it is skipped."""
        try:
            return self.path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return self.path.as_posix()


def page_sources(source: Path) -> list[PageSource]:
    """The files to read from ``source`` (a folder or a sitemap), in a stable order; DocsSourceError if it is neither."""
    if source.is_dir():
        found = (p for p in source.rglob("*") if p.suffix.lower() in MARKDOWN_SUFFIXES | HTML_SUFFIXES)
        visible = (p for p in found if p.is_file() and not any(part.startswith(".") for part in p.relative_to(source).parts))
        return [PageSource(path=p, root=source) for p in sorted(visible)]
    if source.is_file() and source.suffix.lower() == ".xml":
        return _sitemap_sources(source)
    raise DocsSourceError(f"{source}: not a folder of .md/.html pages nor a sitemap .xml file")


def _sitemap_sources(sitemap: Path) -> list[PageSource]:
    try:
        root = ET.fromstring(sitemap.read_bytes()[:MAX_SITEMAP_BYTES])
    except (OSError, ET.ParseError) as exc:
        raise DocsSourceError(f"{sitemap}: unreadable sitemap: {exc}") from exc
    folder = sitemap.parent
    sources = []
    for entry in root.iter():
        if _local_name(entry.tag) != "url":
            continue
        loc = _child_text(entry, "loc")
        if not loc:
            continue
        path = _local_file(folder, loc)
        is_web = urlsplit(loc).scheme in {"http", "https"}
        sources.append(PageSource(path=path or folder / loc, root=folder, url=loc if is_web else None, title=_child_text(entry, "title")))
    return sources


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child_text(element: ET.Element, name: str) -> str | None:
    for child in element:
        if _local_name(child.tag) == name and child.text and child.text.strip():
            return child.text.strip()
    return None


def _local_file(folder: Path, loc: str) -> Path | None:
    """The file under ``folder`` that a sitemap ``loc`` names, or None (never outside ``folder``)."""
    parts = urlsplit(loc)
    rel = unquote(parts.path if parts.scheme in {"http", "https", "file"} else loc).lstrip("/")
    if parts.scheme == "file":
        absolute = Path(unquote(parts.path))
        rel = str(absolute.relative_to(folder.resolve())) if absolute.is_relative_to(folder.resolve()) else ""
    stem = rel.rstrip("/")
    candidates = [rel] if rel and not rel.endswith("/") else []
    candidates += [f"{stem}/index{s}" for s in (".html", ".htm", ".md")] + [f"{stem}{s}" for s in (".html", ".htm", ".md")]
    base = folder.resolve()
    for candidate in candidates:
        path = (folder / candidate).resolve()
        if path.is_relative_to(base) and path.is_file():
            return path
    return None
