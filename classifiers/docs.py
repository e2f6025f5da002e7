"""Documentation signposting: an index of a desk's documentation pages, searched per enquiry.

    index = build_index(Path("config/docs"))          # Markdown / HTML folder, or a sitemap.xml
    index.save(settings.resolved_docs_index)
    index = DocsIndex.load(settings.resolved_docs_index, gap_score=settings.docs_gap_score)
    found = index.signpost(subject + "\\n" + body, language=ticket.language)
    ticket.suggestions, ticket.docs_gap = found.to_json(), found.gap

Sources
-------
- **A folder** (searched recursively; hidden files and folders skipped):
  ``.md`` / ``.markdown`` pages with optional YAML front matter (``title``,
  ``url``, ``lang``, ``index: false`` to leave a page out); without them the
  title is the first heading (else the file name) and the url is the path
  relative to the folder. ``.html`` / ``.htm`` pages: ``<title>`` (else the
  first ``<h1>``), ``<link rel=canonical>`` or ``<meta property=og:url>`` /
  ``<meta name=url>`` (else the relative path), ``<html lang>``; text by
  inscriptis; ``<meta name=robots content=noindex>`` leaves a page out.
- **A sitemap file** (``*.xml``, the sitemaps.org format). Each ``<url><loc>``
  names a page; nothing is fetched over the network (indexing is offline and
  repeatable). A ``loc`` that is a relative path or ``file:`` URL is read
  relative to the sitemap's folder; an ``http(s)`` URL is looked up under that
  folder by its path (``/en/faq/`` → ``en/faq/index.html``, ``en/faq.html``,
  ``en/faq.md``, …). The suggested url is the ``http(s)`` ``loc`` itself, else
  the page's own url. A non-standard ``<title>`` child of ``<url>`` overrides
  the page's title. Entries with no local file are skipped and reported.

The language of a page is its front matter ``lang`` (HTML: ``<html lang>``),
else the first folder of its path named like a language code (``en/``,
``es/``, ``pt-br/`` → ``pt``), else unknown. Each page's text is bounded
(``max_page_chars``; files are read up to 8 bytes per character), so a huge or
binary file costs little and never stops the build: it is skipped with a reason.

Rankers (measured with ``python bench/signposting.py`` on
``classifiers/data/docs-relevance.jsonl``: 80 answerable enquiries — 54 en,
10 es, 8 fr, 8 pt — and 12 with no relevant page, against config/docs with the
language filter on, as in the worker)::

    ranker  MRR    recall@3  nDCG@3  gap P / R / F1 (threshold)   gap F1 LOO  queries/s
    bm25    0.904  0.875     0.854   1.00 / 0.83 / 0.91 (0.06)    0.86        ~3,300
    lsa     0.928  0.906     0.877   0.80 / 0.67 / 0.73 (0.66)    0.67          ~570

LSA ranks slightly better, but the MRR difference (+0.025) is within noise
(paired bootstrap 95% CI −0.009…+0.064: two or three enquiries), while BM25
separates "no page answers this" far better (its scores of unrelated mail sit
near 0; LSA's character n-grams give every text 0.5+) and is ~6x faster. So
BM25 is the default. BM25 k1/b are the textbook 1.2 / 0.75; only the gap
thresholds were chosen on this set (the leave-one-out F1 is the honest figure).

Scores are in [0, 1] for both rankers: BM25's is the page's score divided by
the best score a page could reach for the query's distinct terms (each term's
``idf × (k1 + 1)``, a term no page contains counting with the highest idf, so
mail about something else scores low); LSA's is the cosine similarity, clipped at 0.

Errors::

    DocsError                 anything this module raises on purpose
    ├── DocsSourceError       the source does not exist or is not a folder / sitemap
    └── DocsIndexError        a saved index cannot be decoded (bad JSON, wrong format or version)

A single unreadable page is not an error: it is listed in ``DocsIndex.skipped``.
"""

from __future__ import annotations

import base64
import json
import math
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import numpy as np
import yaml
from scipy import sparse

from classifiers.text import fold

FORMAT = "helpdesk-docs-index"
FORMAT_VERSION = 1
DEFAULT_RANKER = "bm25"  # the winner of bench/signposting.py; see the module docstring
DEFAULT_MAX_PAGE_CHARS = 50_000
DEFAULT_MAX_PAGES = 20_000
MAX_QUERY_CHARS = 20_000  # an enquiry's first 20k characters say what it is about
FALLBACK_LANGUAGE = "en"  # the complete documentation; translations cover part of it
MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
HTML_SUFFIXES = frozenset({".html", ".htm"})


class DocsError(Exception):
    """Base of every error raised on purpose by the documentation index."""


class DocsSourceError(DocsError):
    """The source does not exist, or is neither a folder nor a readable sitemap."""


class DocsIndexError(DocsError):
    """A saved index cannot be decoded: bad JSON, another format, or an unknown version."""


# -- values -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Suggestion:
    """One documentation page suggested for an enquiry; ``score`` in [0, 1], higher is better."""

    title: str
    url: str
    score: float

    def as_dict(self) -> dict[str, Any]:
        return {"title": self.title, "url": self.url, "score": round(self.score, 4)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Suggestion:
        return cls(title=str(data["title"]), url=str(data["url"]), score=float(data["score"]))


@dataclass(frozen=True)
class Signposting:
    """What a ticket stores: the suggestions worth showing, and whether this is a possible gap.

    When ``gap`` is true ``suggestions`` is empty: weak matches are not sent to enquirers.
    """

    suggestions: tuple[Suggestion, ...]
    gap: bool

    def to_json(self) -> list[dict[str, Any]]:
        return [s.as_dict() for s in self.suggestions]


@dataclass(frozen=True)
class Page:
    """A documentation page as read from its source: the text is only used to build the index."""

    title: str
    url: str
    language: str | None
    text: str


@dataclass(frozen=True)
class PageSource:
    """One file to read: from a folder walk, or from a sitemap entry (with its loc and title)."""

    path: Path
    root: Path
    url: str | None = None
    title: str | None = None


@dataclass(frozen=True)
class Skipped:
    """A page left out of the index, and why (``index: false``, unreadable, empty, …)."""

    path: str
    reason: str


# -- reading sources ----------------------------------------------------------------------------


def page_sources(source: Path) -> list[PageSource]:
    """The files ``build_index`` will read from ``source`` (a folder or a sitemap), in a stable order."""
    if source.is_dir():
        found = (p for p in source.rglob("*") if p.suffix.lower() in MARKDOWN_SUFFIXES | HTML_SUFFIXES)
        visible = (p for p in found if p.is_file() and not any(part.startswith(".") for part in p.relative_to(source).parts))
        return [PageSource(path=p, root=source) for p in sorted(visible)]
    if source.is_file() and source.suffix.lower() == ".xml":
        return _sitemap_sources(source)
    raise DocsSourceError(f"{source}: not a folder of .md/.html pages nor a sitemap .xml file")


def _sitemap_sources(sitemap: Path) -> list[PageSource]:
    try:
        root = ET.fromstring(sitemap.read_bytes()[: 50 * 1024 * 1024])  # the sitemaps.org limit
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


def read_page(item: PageSource, *, max_chars: int = DEFAULT_MAX_PAGE_CHARS) -> Page | Skipped:
    """Read one page; a page that is excluded or unreadable comes back as ``Skipped`` with the reason."""
    label = _relative(item)
    if not item.path.is_file():
        return Skipped(label, "no local file")
    try:
        with item.path.open("rb") as handle:
            raw = handle.read(max_chars * 8)
    except OSError as exc:
        return Skipped(label, f"unreadable: {exc.strerror or exc}")
    text = _clean(_decode_text(raw))
    reader = _read_html if item.path.suffix.lower() in HTML_SUFFIXES else _read_markdown
    page = reader(text, item)
    if isinstance(page, Skipped):
        return page
    body = page.text[:max_chars]
    if not re.search(r"\w\w", body):
        return Skipped(label, "no text")
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


def _relative(item: PageSource) -> str:
    try:
        return item.path.resolve().relative_to(item.root.resolve()).as_posix()
    except ValueError:
        return item.path.as_posix()


def _path_language(item: PageSource) -> str | None:
    """The first folder named like a language code, in the page's path or its web url."""
    folders = list(PurePosixPath(_relative(item)).parts[:-1])
    if item.url:
        folders += [p for p in urlsplit(item.url).path.split("/") if p]
    for part in folders:
        code = _language_code(part)
        if code:
            return code
    return None


def _language_code(value: object) -> str | None:
    match = re.fullmatch(r"([a-z]{2})(?:[-_][a-z]{2,4})?", str(value or "").strip().lower())
    return match.group(1) if match else None


_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


def _read_markdown(text: str, item: PageSource) -> Page | Skipped:
    meta: dict[str, Any] = {}
    match = _FRONT_MATTER.match(text)
    if match:
        try:
            loaded = yaml.safe_load(match.group(1))
        except yaml.YAMLError:
            return Skipped(_relative(item), "invalid YAML front matter")
        meta = loaded if isinstance(loaded, dict) else {}
        text = text[match.end():]
    if meta.get("index") is False:
        return Skipped(_relative(item), "index: false")
    heading = _HEADING.search(text)
    title = str(meta.get("title") or (heading.group(1) if heading else item.path.stem)).strip()
    url = str(meta.get("url") or _relative(item)).strip()
    language = _language_code(meta.get("lang") or meta.get("language")) or _path_language(item)
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
            self.language = _language_code(a["lang"])
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
        return Skipped(_relative(item), f"unreadable HTML: {type(exc).__name__}")
    if head.noindex:
        return Skipped(_relative(item), "robots noindex")
    title = " ".join((head.title or head.h1 or item.path.stem).split())
    language = head.language or _path_language(item)
    return Page(title=title, url=head.url or _relative(item), language=language, text=body)


# -- tokens -------------------------------------------------------------------------------------

_TOKEN = re.compile(r"[^\W_]{2,}", re.UNICODE)
# Function words of en/es/fr/pt and e-mail courtesies: they say nothing about which page helps.
_STOPWORDS = frozenset(
    """
    a about after all also am an and any are as at be been before being but by can could did do does
    for from had has have how if in into is it its just may me more most my no not of on one or other
    our out should so some such than that the their them then there these they this those to too up us
    very was we were what when where which who why will with would you your i im ive hi hello dear
    thanks thank regards best kind many please team helpdesk osds
    el la los las un una unos unas de del al y o u en con por para que se su sus es son como pero mas
    muy ya le les lo nos nuestro nuestra nuestros nuestras este esta estos estas ese esa hay ser estar
    tenemos hola gracias saludos estimados estimado buenos dias cordiales atentamente muchas quisiera
    le les du des et ou dans avec pour par sur ce cette ces qui est sont nous vous notre nos votre vos
    pas ne plus ou au aux il elle ils elles bonjour merci cordialement madame monsieur bien
    o os as um uma uns umas do da dos das no na nos nas com em por para que se seu sua seus suas e sao
    como mas mais ja ao aos isso esse essa este esta nosso nossa nossos nossas ola obrigado obrigada
    atenciosamente prezados prezado bom dia
    """.split()
)


def stem(token: str) -> str:
    """A light suffix stripper shared by en/es/fr/pt: plurals and a few verb endings.

    'suppliers' → 'supplier', 'licitaciones' → 'licitacion', 'licitações' → 'licitacao',
    'published'/'publishing' → 'publish', 'dates'/'date' → 'dat'.
    """
    if len(token) <= 3 or token.isdigit():
        return token
    if token.endswith("coes"):
        return token[:-4] + "cao"
    if token.endswith("ies") and len(token) > 4:
        return token[:-3] + "y"
    if token.endswith("s") and not token.endswith(("ss", "us", "is")):
        token = token[:-1]
    if token.endswith("ing") and len(token) > 6:
        token = token[:-3]
    elif token.endswith("ed") and len(token) > 5:
        token = token[:-2]
    if token.endswith("e") and len(token) > 4:
        token = token[:-1]
    return token


def tokens(text: str) -> list[str]:
    """Folded (case, accents), stop words out, lightly stemmed: what both sides of BM25 are made of."""
    return [stem(t) for t in _TOKEN.findall(fold(text[:MAX_QUERY_CHARS * 10])) if t not in _STOPWORDS]


def _content_words(text: str) -> str:
    """Folded words without stop words: the LSA ranker's n-grams come from words that carry meaning."""
    return " ".join(t for t in _TOKEN.findall(fold(text[:MAX_QUERY_CHARS * 10])) if t not in _STOPWORDS)


def _page_text(page: Page) -> str:
    # The title counts twice: a page called "Lots extension" is about lots above all.
    return f"{page.title}\n{page.title}\n{page.text}"


# -- rankers ------------------------------------------------------------------------------------


class Ranker(Protocol):
    """Scores every page for a query; ``state`` / ``from_state`` round-trip through JSON exactly."""

    name: str

    def scores(self, query: str) -> np.ndarray: ...

    def state(self) -> dict[str, Any]: ...


class BM25Ranker:
    """Okapi BM25 over ``tokens``; scores divided by the query's best possible score, so in [0, 1]."""

    name = "bm25"

    def __init__(self, vocabulary: list[str], counts: sparse.csr_matrix, *, k1: float = 1.2, b: float = 0.75) -> None:
        self.vocabulary, self.counts, self.k1, self.b = vocabulary, counts, k1, b
        self._term_ids = {term: i for i, term in enumerate(vocabulary)}
        n_docs = counts.shape[0]
        doc_freq = np.bincount(counts.indices, minlength=len(vocabulary)) if n_docs else np.zeros(len(vocabulary))
        self.idf = np.log(1.0 + (n_docs - doc_freq + 0.5) / (doc_freq + 0.5))
        self._weights = self._term_weights().tocsc()

    @classmethod
    def fit(cls, texts: Sequence[str], **params: float) -> BM25Ranker:
        per_doc = [Counter(tokens(t)) for t in texts]
        vocabulary = sorted(set().union(*per_doc)) if per_doc else []
        ids = {term: i for i, term in enumerate(vocabulary)}
        rows, cols, data = [], [], []
        for row, counts in enumerate(per_doc):
            for term, count in counts.items():
                rows.append(row), cols.append(ids[term]), data.append(count)
        matrix = sparse.csr_matrix((data, (rows, cols)), shape=(len(texts), len(vocabulary)), dtype=np.float64)
        return cls(vocabulary, matrix, **params)

    def _term_weights(self) -> sparse.csr_matrix:
        lengths = np.asarray(self.counts.sum(axis=1)).ravel()
        norm = self.k1 * (1.0 - self.b + self.b * lengths / max(lengths.mean() if lengths.size else 1.0, 1.0))
        weights = self.counts.tocoo(copy=True)
        tf = weights.data
        weights.data = self.idf[weights.col] * tf * (self.k1 + 1.0) / (tf + norm[weights.row])
        return weights.tocsr()

    def scores(self, query: str) -> np.ndarray:
        terms = set(tokens(query))
        ids = sorted(self._term_ids[t] for t in terms if t in self._term_ids)
        if not ids:
            return np.zeros(self.counts.shape[0])
        raw = np.asarray(self._weights[:, ids].sum(axis=1)).ravel()
        # Words no page contains count as the rarest words: an enquiry mostly about
        # something else (an invoice, a job application) scores low on every page.
        unseen = (len(terms) - len(ids)) * math.log(1.0 + (self.counts.shape[0] + 0.5) / 0.5)
        return raw / ((self.idf[ids].sum() + unseen) * (self.k1 + 1.0))

    def state(self) -> dict[str, Any]:
        counts = self.counts.tocsr()
        return {"k1": self.k1, "b": self.b, "vocabulary": self.vocabulary, "indptr": counts.indptr.tolist(),
                "indices": counts.indices.tolist(), "counts": counts.data.astype(int).tolist()}

    @classmethod
    def from_state(cls, state: dict[str, Any], n_docs: int) -> BM25Ranker:
        vocabulary = [str(t) for t in state["vocabulary"]]
        counts = sparse.csr_matrix((np.asarray(state["counts"], dtype=np.float64), np.asarray(state["indices"], dtype=np.int64),
                                    np.asarray(state["indptr"], dtype=np.int64)), shape=(n_docs, len(vocabulary)))
        return cls(vocabulary, counts, k1=float(state["k1"]), b=float(state["b"]))


class LsaRanker:
    """The offline "embedding": TF-IDF of character n-grams (3–5, within words) reduced by TruncatedSVD.

    Character n-grams match across inflections and cognates ('validación' ~ 'validation');
    the SVD merges n-grams that occur on the same pages. Cosine similarity, clipped at 0.
    """

    name = "lsa"
    NGRAMS = (3, 5)
    MAX_FEATURES = 20_000
    MAX_COMPONENTS = 128

    def __init__(self, vocabulary: list[str], idf: np.ndarray, components: np.ndarray, doc_vectors: np.ndarray) -> None:
        from sklearn.feature_extraction.text import CountVectorizer  # noqa: PLC0415 - only this ranker needs sklearn

        self.vocabulary, self.idf, self.components, self.doc_vectors = vocabulary, idf, components, doc_vectors
        self._counter = CountVectorizer(analyzer="char_wb", ngram_range=self.NGRAMS, preprocessor=_content_words, vocabulary=vocabulary, dtype=np.float32)
        self._counter.transform([""])  # validates the vocabulary now, not in concurrent searches

    @classmethod
    def fit(cls, texts: Sequence[str]) -> LsaRanker:
        from sklearn.decomposition import TruncatedSVD  # noqa: PLC0415
        from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: PLC0415

        tfidf = TfidfVectorizer(analyzer="char_wb", ngram_range=cls.NGRAMS, preprocessor=_content_words, sublinear_tf=True,
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

    def scores(self, query: str) -> np.ndarray:
        if not self.doc_vectors.size:
            return np.zeros(len(self.doc_vectors))
        return np.clip(self.doc_vectors @ self._embed([query[:MAX_QUERY_CHARS]])[0], 0.0, 1.0).astype(np.float64)

    def state(self) -> dict[str, Any]:
        return {"vocabulary": self.vocabulary, "idf": _encode(self.idf), "components": _encode(self.components),
                "doc_vectors": _encode(self.doc_vectors)}

    @classmethod
    def from_state(cls, state: dict[str, Any], n_docs: int) -> LsaRanker:
        vectors = _decode(state["doc_vectors"])
        if vectors.shape[0] != n_docs:
            raise ValueError("doc_vectors do not match the pages")
        return cls([str(t) for t in state["vocabulary"]], _decode(state["idf"]), _decode(state["components"]), vectors)


def _encode(array: np.ndarray) -> dict[str, Any]:
    """A float32 array as base64 in JSON: exact, and ~4x smaller than a list of decimals."""
    data = np.ascontiguousarray(array, dtype="<f4")
    return {"dtype": "<f4", "shape": list(data.shape), "base64": base64.b64encode(data.tobytes()).decode("ascii")}


def _decode(data: dict[str, Any]) -> np.ndarray:
    if data.get("dtype") != "<f4":
        raise ValueError(f"unsupported dtype {data.get('dtype')!r}")
    return np.frombuffer(base64.b64decode(data["base64"]), dtype="<f4").reshape(data["shape"]).astype(np.float32)


RANKERS: dict[str, Callable[[Sequence[str]], Ranker]] = {"bm25": BM25Ranker.fit, "lsa": LsaRanker.fit}
_LOADERS: dict[str, Callable[[dict[str, Any], int], Ranker]] = {"bm25": BM25Ranker.from_state, "lsa": LsaRanker.from_state}
# Below these best scores an enquiry is a possible documentation gap (chosen in bench/signposting.py).
GAP_SCORES: dict[str, float] = {"bm25": 0.06, "lsa": 0.66}


# -- the index ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageInfo:
    """What the index keeps of a page: enough to suggest it."""

    title: str
    url: str
    language: str | None


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
        if ranker not in RANKERS:
            raise ValueError(f"unknown ranker {ranker!r}; known: {', '.join(RANKERS)}")
        if not pages:
            raise DocsSourceError("no pages to index (every page was skipped, or the source is empty)")
        infos = tuple(PageInfo(p.title, p.url, p.language) for p in pages)
        return cls(infos, RANKERS[ranker]([_page_text(p) for p in pages]), GAP_SCORES[ranker] if gap_score is None else gap_score, tuple(skipped))

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
        scores = self.ranker.scores(text[:MAX_QUERY_CHARS])
        if language is not None:
            allowed = self._by_language.get(_language_code(language), self._by_language[None])
            scores = np.where(allowed, scores, 0.0)
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

    # -- persistence --------------------------------------------------------------------------

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
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise DocsIndexError(f"not a documentation index (format {FORMAT!r} expected)")
        if data.get("version") != FORMAT_VERSION:
            raise DocsIndexError(f"index format version {data.get('version')!r}; this code reads {FORMAT_VERSION}: rebuild it with `helpdesk docs index`")
        try:
            pages = tuple(PageInfo(str(p["title"]), str(p["url"]), p.get("language")) for p in data["pages"])
            ranker = _LOADERS[data["ranker"]](data["model"], len(pages))
            skipped = tuple(Skipped(str(s["path"]), str(s["reason"])) for s in data.get("skipped", ()))
            return cls(pages, ranker, float(data["gap_score"]), skipped, str(data.get("fallback_language") or FALLBACK_LANGUAGE))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DocsIndexError(f"corrupt documentation index: {type(exc).__name__}: {exc}") from exc

    def save(self, path: Path) -> None:
        """Write the index as JSON (atomically: a reader never sees half a file)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
        partial.replace(path)

    @classmethod
    def load(cls, path: Path, *, gap_score: float | None = None) -> DocsIndex:
        """Read an index saved by ``save``; ``gap_score`` (when > 0) replaces the index's own threshold."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DocsIndexError(f"{path}: cannot read the documentation index: {exc}") from exc
        index = cls.from_json(data)
        return index.with_gap_score(gap_score) if gap_score else index


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

    ``sources``: ``page_sources(source)`` when the caller listed them already. ``progress`` is called after each file. Raises DocsSourceError when ``source`` is unusable;
    unreadable or excluded pages end up in ``DocsIndex.skipped``. Beyond ``max_pages`` pages are skipped.
    """
    pages: list[Page] = []
    skipped: list[Skipped] = []
    for item in page_sources(source) if sources is None else sources:
        result = read_page(item, max_chars=max_page_chars)
        if isinstance(result, Skipped):
            skipped.append(result)
        elif len(pages) >= max_pages:
            skipped.append(Skipped(_relative(item), f"over the limit of {max_pages} pages"))
        else:
            pages.append(result)
        if progress is not None:
            progress(item)
    return DocsIndex.from_pages(pages, ranker=ranker, gap_score=gap_score, skipped=skipped)
