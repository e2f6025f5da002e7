"""Reading a desk's documentation pages (Markdown or HTML files) into the values the index is built from.

    pages, skipped = read_pages(Path("config/docs"))   # a folder, or a sitemap.xml: see config.docs_sources
    index = DocsIndex.from_pages(pages, skipped=skipped)

- **Markdown** (``.md`` / ``.markdown``) with optional YAML front matter
  (``title``, ``url``, ``lang``, ``index: false`` to leave a page out); without
  them the title is the first heading (else the file name) and the url is the
  path relative to the folder.
- **HTML** (``.html`` / ``.htm``): ``<title>`` (else the first ``<h1>``),
  ``<link rel=canonical>`` or ``<meta property=og:url>`` / ``<meta name=url>``
  (else the relative path), ``<html lang>``; text by inscriptis;
  ``<meta name=robots content=noindex>`` leaves a page out.

The language of a page is its front matter ``lang`` (HTML: ``<html lang>``),
else the first folder of its path named like a language code (``en/``,
``es/``, ``pt-br/`` → ``pt``), else unknown. Each page's text is bounded
(``max_chars``; files are read up to 8 bytes per character), so a huge or
binary file costs little and never stops the build: it is skipped with a reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import yaml

from classifiers.docs.pages import Page, Skipped, language_code
from config.docs_sources import HTML_SUFFIXES, PageSource, page_sources

DEFAULT_MAX_PAGE_CHARS = 50_000
DEFAULT_MAX_PAGES = 20_000


def read_pages(
    source: Path,
    *,
    max_page_chars: int = DEFAULT_MAX_PAGE_CHARS,
    max_pages: int = DEFAULT_MAX_PAGES,
    progress: Callable[[PageSource], None] | None = None,
    sources: Sequence[PageSource] | None = None,
) -> tuple[list[Page], list[Skipped]]:
    """Every page under ``source`` (a folder or a sitemap .xml), and those left out with the reason.

    ``sources``: ``page_sources(source)`` when the caller listed them already. ``progress`` is called
    after each file. Raises DocsSourceError when ``source`` is unusable. Beyond ``max_pages`` pages are skipped.
    """
    pages: list[Page] = []
    skipped: list[Skipped] = []
    for item in page_sources(source) if sources is None else sources:
        result = read_page(item, max_chars=max_page_chars)
        if isinstance(result, Skipped):
            skipped.append(result)
        elif len(pages) >= max_pages:
            skipped.append(Skipped(item.label, f"over the limit of {max_pages} pages"))
        else:
            pages.append(result)
        if progress is not None:
            progress(item)
    return pages, skipped


def read_page(item: PageSource, *, max_chars: int = DEFAULT_MAX_PAGE_CHARS) -> Page | Skipped:
    """Read one page; a page that is excluded or unreadable comes back as ``Skipped`` with the reason."""
    if not item.path.is_file():
        return Skipped(item.label, "no local file")
    try:
        with item.path.open("rb") as handle:
            raw = handle.read(max_chars * 8)
    except OSError as exc:
        return Skipped(item.label, f"unreadable: {exc.strerror or exc}")
    text = _clean(_decode_text(raw))
    reader = _read_html if item.path.suffix.lower() in HTML_SUFFIXES else _read_markdown
    page = reader(text, item)
    if isinstance(page, Skipped):
        return page
    body = page.text[:max_chars]
    if not re.search(r"\w\w", body):
        return Skipped(item.label, "no text")
    return Page(title=(item.title or page.title)[:300], url=item.url or page.url, language=page.language, text=body)


def _decode_text(raw: bytes) -> str:
    """UTF-8; else Windows-1252 (legacy pages), which decodes any bytes."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(raw) - 3:  # a character cut by the size bound
            return raw[: exc.start].decode("utf-8", errors="replace")
        return raw.decode("cp1252", errors="replace")


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _clean(text: str) -> str:
    return _CONTROL.sub(" ", text.lstrip("\ufeff"))


def _path_language(item: PageSource) -> str | None:
    """The first folder named like a language code, in the page's path or its web url."""
    folders = list(PurePosixPath(item.label).parts[:-1])
    if item.url:
        folders += [p for p in urlsplit(item.url).path.split("/") if p]
    for part in folders:
        code = language_code(part)
        if code:
            return code
    return None


_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


def _read_markdown(text: str, item: PageSource) -> Page | Skipped:
    meta: dict[str, Any] = {}
    match = _FRONT_MATTER.match(text)
    if match:
        try:
            loaded = yaml.safe_load(match.group(1))
        except yaml.YAMLError:
            return Skipped(item.label, "invalid YAML front matter")
        meta = loaded if isinstance(loaded, dict) else {}
        text = text[match.end():]
    if meta.get("index") is False:
        return Skipped(item.label, "index: false")
    heading = _HEADING.search(text)
    title = str(meta.get("title") or (heading.group(1) if heading else item.path.stem)).strip()
    url = str(meta.get("url") or item.label).strip()
    language = language_code(meta.get("lang") or meta.get("language")) or _path_language(item)
    return Page(title=title, url=url, language=language, text=_markdown_text(text))


_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_MARKUP = re.compile(r"[`*_>|#~]+|^[ \t]*[-+][ \t]+|^[-=]{3,}[ \t]*$", re.MULTILINE)


def _markdown_text(text: str) -> str:
    """Readable text: links keep their words, markup characters go."""
    return _MD_MARKUP.sub(" ", _MD_LINK.sub(r"\1", text))


class _HeadParser(HTMLParser):
    """Title, canonical url, language and robots directive of an HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.h1 = ""
        self.url: str | None = None
        self.language: str | None = None
        self.noindex = False
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "html" and a.get("lang"):
            self.language = language_code(a["lang"])
        elif tag == "link" and "canonical" in a.get("rel", "").lower().split() and a.get("href"):
            self.url = self.url or a["href"].strip()
        elif tag == "meta":
            key = (a.get("property") or a.get("name") or "").lower()
            if key in {"og:url", "url"} and a.get("content"):
                self.url = self.url or a["content"].strip()
            elif key == "robots" and "noindex" in a.get("content", "").lower():
                self.noindex = True
        elif tag in {"title", "h1"}:
            self._in = tag

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "title" and len(self.title) < 500:
            self.title += data
        elif self._in == "h1" and len(self.h1) < 500:
            self.h1 += data


def _read_html(text: str, item: PageSource) -> Page | Skipped:
    from inscriptis import get_text  # noqa: PLC0415 - only HTML sources pay its import

    head = _HeadParser()
    try:
        head.feed(text)
        head.close()
        body = get_text(text)
    except Exception as exc:  # noqa: BLE001 - hostile markup: skip the page, keep building
        return Skipped(item.label, f"unreadable HTML: {type(exc).__name__}")
    if head.noindex:
        return Skipped(item.label, "robots noindex")
    title = " ".join((head.title or head.h1 or item.path.stem).split())
    language = head.language or _path_language(item)
    return Page(title=title, url=head.url or item.label, language=language, text=body)
