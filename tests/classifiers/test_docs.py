from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import bm25s
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from classifiers.docs.errors import DocsIndexError, DocsSourceError
from classifiers.docs.index import FORMAT_VERSION, DocsIndex
from classifiers.docs.pages import Page
from classifiers.docs.suggestions import Suggestion
from classifiers.docs.tokens import stems, tokens, words
from config.docs_pages import read_page
from config.docs_sources import page_sources
from ops.docs_cli import register
from workers.intake.docs_index import build_index, load_index, save_index

DOCS = Path(__file__).resolve().parents[2] / "config" / "docs"
BASE = "https://standard.osds.example"


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def osds() -> DocsIndex:
    return build_index(DOCS)


@pytest.fixture()
def markdown_site(tmp_path: Path) -> Path:
    write(tmp_path / "en" / "lots.md", "---\ntitle: Lots extension\nurl: https://docs.example/lots/\n---\n\n# Lots\n\nAn award points to its lots with relatedLots.\n")
    write(tmp_path / "es" / "monedas.md", "# Monedas y montos\n\nCada monto necesita un código de moneda ISO 4217.\n")
    write(tmp_path / "guide.md", "---\ntitle: Guide\nurl: https://docs.example/guide/\nlang: fr\n---\nUn guide de publication des marchés.\n")
    write(tmp_path / "draft.md", "---\ntitle: Draft\nindex: false\n---\nNot ready.\n")
    write(tmp_path / ".hidden" / "secret.md", "# Secret\n")
    return tmp_path


# -- sources -----------------------------------------------------------------------------------


def test_markdown_folder_reads_front_matter_headings_and_language_folders(markdown_site: Path) -> None:
    # When
    index = build_index(markdown_site)
    # Then
    pages = {p.url: p for p in index.pages}
    assert set(pages) == {"https://docs.example/lots/", "es/monedas.md", "https://docs.example/guide/"}
    assert pages["https://docs.example/lots/"].title == "Lots extension"
    assert pages["https://docs.example/lots/"].language == "en"
    assert pages["es/monedas.md"].title == "Monedas y montos"
    assert pages["es/monedas.md"].language == "es"
    assert pages["https://docs.example/guide/"].language == "fr"
    assert [(s.path, s.reason) for s in index.skipped] == [("draft.md", "index: false")]
    assert index.search("which lots does an award cover?")[0].url == "https://docs.example/lots/"


def test_html_pages_give_title_canonical_url_language_and_text(tmp_path: Path) -> None:
    # Given
    write(tmp_path / "api.html", """<!doctype html><html lang="en-GB"><head><title> Data API </title>
        <link rel="canonical" href="https://docs.example/api/"></head>
        <body><nav>menu</nav><h1>Data API</h1><p>Rate limits: 60 requests per minute; 429 Too Many Requests.</p></body></html>""")
    write(tmp_path / "pt" / "mapa.htm", """<html><head><meta property="og:url" content="https://docs.example/pt/mapa/"></head>
        <body><h1>Guia de mapeamento</h1><p>Modalidades de licitação: pregão eletrônico.</p></body></html>""")
    write(tmp_path / "old.html", '<html><head><meta name="robots" content="noindex"><title>Old</title></head><body>x</body></html>')
    # When
    index = build_index(tmp_path)
    # Then
    pages = {p.url: p for p in index.pages}
    assert pages["https://docs.example/api/"].title == "Data API"
    assert pages["https://docs.example/api/"].language == "en"
    assert pages["https://docs.example/pt/mapa/"].title == "Guia de mapeamento"
    assert pages["https://docs.example/pt/mapa/"].language == "pt"
    assert [s.reason for s in index.skipped] == ["robots noindex"]
    assert index.search("too many requests rate limit")[0].url == "https://docs.example/api/"
    assert index.search("pregão eletrônico", language="pt")[0].url == "https://docs.example/pt/mapa/"


def test_sitemap_entries_point_at_local_files(tmp_path: Path) -> None:
    # Given: a relative loc, a web loc found under the sitemap's folder, a non-standard title, a missing page
    write(tmp_path / "pages" / "tender.md", "# Tender\n\nThe estimated value of the procurement is tender/value.\n")
    write(tmp_path / "en" / "faq" / "index.html", "<html><head><title>FAQ</title></head><body><p>Offline copy of the documentation as PDF.</p></body></html>")
    sitemap = write(tmp_path / "sitemap.xml", """<?xml version="1.0" encoding="UTF-8"?>
        <urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
          <url><loc>pages/tender.md</loc></url>
          <url><loc>https://docs.example/en/faq/</loc><title>Frequently asked questions</title></url>
          <url><loc>https://docs.example/en/missing/</loc></url>
        </urlset>""")
    # When
    index = build_index(sitemap)
    # Then
    pages = {p.url: p for p in index.pages}
    assert pages["pages/tender.md"].title == "Tender"
    assert pages["https://docs.example/en/faq/"].title == "Frequently asked questions"
    assert pages["https://docs.example/en/faq/"].language == "en"
    assert [s.reason for s in index.skipped] == ["no local file"]
    assert index.search("is there a PDF offline copy?")[0].url == "https://docs.example/en/faq/"


def test_a_missing_source_or_a_broken_sitemap_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(DocsSourceError):
        build_index(tmp_path / "nowhere")
    with pytest.raises(DocsSourceError):
        build_index(write(tmp_path / "sitemap.xml", "<urlset><url><loc>a.md"))
    with pytest.raises(DocsSourceError, match="no pages"):
        build_index(write(tmp_path / "empty" / "draft.md", "---\nindex: false\n---\n").parent)


def test_oversized_binary_and_garbled_pages_are_bounded_or_skipped(tmp_path: Path) -> None:
    # Given
    write(tmp_path / "huge.md", "# Huge\n\n" + "procurement tender award " * 400_000)  # ~10 MB
    write(tmp_path / "binary.md", bytes(range(256)) * 100)
    write(tmp_path / "bad-yaml.md", "---\ntitle: [unclosed\n---\ntext\n")
    write(tmp_path / "latin1.md", "# Contrataç\xe3o\n\nConstruç\xf5es públicas".encode("latin-1"))
    write(tmp_path / "broken.html", "<html><head><title>Broken<body><table><tr><td>amendments <<<>>> &#xZZ;")
    # When
    index = build_index(tmp_path, max_page_chars=10_000)
    # Then
    reasons = {s.path: s.reason for s in index.skipped}
    assert reasons["bad-yaml.md"] == "invalid YAML front matter"
    assert {"huge.md", "binary.md"} <= {p.url for p in index.pages}  # indexed, each within the bound
    assert all(len(read_page(src, max_chars=10_000).text) <= 10_000 for src in page_sources(tmp_path) if src.path.suffix == ".md"
               and src.path.name != "bad-yaml.md")
    assert "broken.html" in {p.url for p in index.pages} | set(reasons)
    assert index.search("Construções públicas")[0].url == "latin1.md"
    assert index.search("\x00\ufffd" * 10 + "tender " * 100_000)[0].url == "huge.md"
    assert index.search("") == []
    assert index.search("   ") == []
    assert index.search("tender", k=0) == []


# -- search and gaps on the shipped documentation ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        ("Should each call-off under our framework agreement be a separate contracting process?", "en", "/en/guidance/frameworks/"),
        ("The review tool gives 502 Gateway Timeout on our 180 MB file. Is there a file size limit?", "en", "/en/tools/review-tool/"),
        ("How do we publish payments made in several instalments, and a refund?", "en", "/en/schema/implementation/"),
        ("La herramienta de revisión dice que 'MXP' no es un código de moneda y que el monto no es de tipo number.", "es", "/es/herramientas/errores/"),
        ("¿Cómo nos registramos como publicadores? ¿Hace falta una carta firmada para el prefijo ocid?", "es", "/es/publicar/registro/"),
    ],
)
def test_search_finds_the_page_that_answers(osds: DocsIndex, text: str, language: str, expected: str) -> None:
    found = osds.search(text, k=3, language=language)
    assert BASE + expected in [s.url for s in found]
    assert not osds.is_gap(found)


def test_language_keeps_pages_in_that_language_and_english(osds: DocsIndex) -> None:
    found = osds.search("registro publicadores licencia municipio mapeo", k=10, language="fr")
    assert found
    assert all("/es/" not in s.url and "/pt/" not in s.url for s in found)


def test_an_unrelated_enquiry_is_a_possible_gap(osds: DocsIndex) -> None:
    # When
    result = osds.signpost("Hi, the printer on the second floor says the toner is low and the paper tray is jammed again. Who should I call?")
    # Then
    assert result.gap
    assert result.suggestions == ()
    assert result.to_json() == []
    related = osds.signpost("How do we link call-offs to the framework agreement?", language="en")
    top = related.to_json()[0]
    assert not related.gap
    assert (top["title"], top["url"]) == ("Framework agreements and call-offs", BASE + "/en/guidance/frameworks/")
    assert top["score"] > 0


def test_suggestion_is_frozen_and_json_serialisable() -> None:
    suggestion = Suggestion("Awards", BASE + "/en/schema/awards/", 0.123456)
    assert json.loads(json.dumps(suggestion.as_dict())) == {"title": "Awards", "url": BASE + "/en/schema/awards/", "score": 0.1235}
    assert Suggestion.from_dict(suggestion.as_dict()).url == suggestion.url
    with pytest.raises(AttributeError):
        suggestion.score = 1.0  # type: ignore[misc]


# -- persistence ------------------------------------------------------------------------------


@pytest.mark.parametrize("ranker", ["bm25", "lsa"])
def test_save_and_load_give_identical_results(tmp_path: Path, ranker: str) -> None:
    # Given
    index = build_index(DOCS, ranker=ranker)
    queries = ["framework call-offs", "errores de validación moneda", "licence ouverte RGPD", "nothing like this zzz"]
    # When
    save_index(index, tmp_path / "index.json")
    loaded = load_index(tmp_path / "index.json")
    # Then
    assert loaded.pages == index.pages
    assert loaded.gap_score == index.gap_score
    assert loaded.skipped == index.skipped
    for query in queries:
        assert loaded.search(query, k=5) == index.search(query, k=5)
        assert loaded.search(query, language="es") == index.search(query, language="es")


def test_load_applies_a_configured_gap_score(tmp_path: Path, osds: DocsIndex) -> None:
    save_index(osds, tmp_path / "index.json")
    assert load_index(tmp_path / "index.json", gap_score=0.99).gap_score == 0.99
    assert load_index(tmp_path / "index.json", gap_score=0.0).gap_score == osds.gap_score


QUERIES = ["framework call-offs", "errores de validación moneda", "licence ouverte RGPD", "nothing like this zzz",
           "How do we publish payments made in several instalments, and a refund?"]


def test_a_saved_index_is_searched_without_bm25s_or_scipy(tmp_path: Path, osds: DocsIndex) -> None:
    # Given an index saved with its term weights
    save_index(osds, tmp_path / "index.json")
    # When a fresh process loads it and searches
    probe = ("import sys; from pathlib import Path; from workers.intake.docs_index import load_index; "
             f"index = load_index(Path({str(tmp_path / 'index.json')!r})); index.signpost('framework call-offs', language='en'); "
             "print(sorted(m for m in ('bm25s', 'scipy', 'sklearn') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2])
    # Then none of the indexing libraries was imported
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_searching_adds_up_the_weights_bm25s_computed_exactly_as_bm25s_does(osds: DocsIndex) -> None:
    # Given the index's ranker and bm25s's own model of the same term counts
    ranker = osds.ranker
    term_ids = {term: i for i, term in enumerate(ranker.vocabulary)}
    model = bm25s.BM25(k1=ranker.k1, b=ranker.b, method="lucene")
    model.index((ranker.counts.page_terms(), term_ids), create_empty_token=False, show_progress=False)
    for query in QUERIES:
        ids = sorted({term_ids[t] for t in tokens(query) if t in term_ids})
        # When / Then: the same float32 scores, bit for bit
        assert np.array_equal(ranker.weights.scores(ids, len(osds.pages)), model.get_scores_from_ids(ids))


def test_an_index_saved_without_term_weights_is_searched_as_before(osds: DocsIndex) -> None:
    # Given an index file written before the weights were kept
    older = osds.to_json()
    older["model"] = {k: v for k, v in older["model"].items() if k != "weights"}
    # When
    loaded = DocsIndex.from_json(json.loads(json.dumps(older)))
    # Then bm25s computes them as it loads: the same results
    for query in QUERIES:
        assert loaded.search(query, k=5) == osds.search(query, k=5)
        assert loaded.search(query, language="es") == osds.search(query, language="es")


def test_term_weights_that_do_not_match_the_counts_are_a_corrupt_index(osds: DocsIndex) -> None:
    # Given the weights of another index
    other = DocsIndex.from_pages([Page("A", "https://docs.example/a/", "en", "Lots and awards.")])
    broken = osds.to_json()
    broken["model"] = broken["model"] | {"weights": other.to_json()["model"]["weights"]}
    # When / Then
    with pytest.raises(DocsIndexError):
        DocsIndex.from_json(broken)


def test_an_unreadable_index_is_one_named_error(tmp_path: Path, osds: DocsIndex) -> None:
    write(tmp_path / "garbage.json", b"\xff\x00not json")
    with pytest.raises(DocsIndexError):
        load_index(tmp_path / "garbage.json")
    with pytest.raises(DocsIndexError):
        load_index(tmp_path / "absent.json")
    future = osds.to_json() | {"version": FORMAT_VERSION + 1}
    with pytest.raises(DocsIndexError, match="version"):
        DocsIndex.from_json(future)
    broken = osds.to_json()
    broken["model"] = {"vocabulary": ["x"]}
    with pytest.raises(DocsIndexError):
        DocsIndex.from_json(broken)


def test_stemming_folds_plurals_and_verb_endings_in_each_language() -> None:
    # Given words of en/es/pt in their own languages
    # When they are stemmed by their language's Snowball algorithm
    # Then inflected forms share a stem
    assert tokens("suppliers", "en")[0] == tokens("supplier", "en")[0]
    assert tokens("licitaciones", "es")[0] == tokens("licitación", "es")[0]
    assert tokens("licitações", "pt")[0] == tokens("licitação", "pt")[0]
    assert tokens("published", "en")[0] == tokens("publishing", "en")[0] == tokens("publish", "en")[0]


def test_tokens_keep_the_word_itself_beside_its_stem_and_drop_stop_words() -> None:
    # When
    found = tokens("The suppliers and the award", "en")
    # Then: stems first, then each word that stemming changed, folded
    assert found == ["supplier", "award", "suppliers"]


def test_a_word_is_stemmed_before_its_accents_are_folded() -> None:
    # Given a Portuguese plural whose suffix Snowball recognises only with its accents
    # When
    stemmed = stems(words("licitações"), "portuguese")
    # Then
    assert stemmed == ["licit"]


def test_a_language_without_its_own_stemmer_is_stemmed_as_english() -> None:
    assert tokens("suppliers", "de") == tokens("suppliers", "en")
    assert tokens("suppliers", None) == tokens("suppliers", "en")


def test_stemming_gives_the_same_stems_from_many_threads() -> None:
    # Given
    text = "licitaciones publicadas por los ministerios " * 200
    expected = tokens(text, "es")
    # When
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: tokens(text, "es"), range(64)))
    # Then
    assert all(result == expected for result in results)


def test_pages_are_indexed_from_values_without_files() -> None:
    # Given pages a loader has read
    pages = [Page("Lots extension", "https://docs.example/lots/", "en", "An award points to its lots."),
             Page("Monedas", "https://docs.example/es/monedas/", "es", "Cada monto necesita un código de moneda.")]
    # When
    index = DocsIndex.from_pages(pages)
    # Then
    assert index.search("¿qué código de moneda?", language="es")[0].url == "https://docs.example/es/monedas/"


def test_each_page_is_matched_with_the_query_stemmed_in_the_page_language() -> None:
    # Given a Spanish page whose word is stemmed as Spanish ('publicadores' → 'public')
    pages = [Page("Registro", "https://docs.example/es/registro/", "es", "Los publicadores se registran aquí."),
             Page("Other", "https://docs.example/en/other/", "en", "Nothing about this subject at all.")]
    index = DocsIndex.from_pages(pages)
    # When an enquiry uses another form of the word
    found = index.search("publicador", language="es")
    # Then
    assert [s.url for s in found] == ["https://docs.example/es/registro/"]


def test_the_exact_word_ranks_above_a_shared_stem() -> None:
    # Given two pages sharing the stem 'publish', one with the enquirer's very word
    pages = [Page("A", "https://docs.example/a/", "en", "How publishing works for everyone."),
             Page("B", "https://docs.example/b/", "en", "Who publishes what works for everyone.")]
    index = DocsIndex.from_pages(pages)
    # When
    found = index.search("publishes")
    # Then
    assert found[0].url == "https://docs.example/b/"


def test_an_index_with_an_unknown_stemmer_is_a_corrupt_index(osds: DocsIndex) -> None:
    # Given
    broken = osds.to_json()
    broken["model"] = broken["model"] | {"stemmers": ["klingon"] * len(osds.pages)}
    # When / Then
    with pytest.raises(DocsIndexError):
        DocsIndex.from_json(broken)


# -- command line -----------------------------------------------------------------------------


@pytest.fixture()
def cli(tmp_path: Path) -> tuple[typer.Typer, dict[str, str]]:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Test app."""

    register(app)
    return app, {"HELPDESK_DATA_DIR": str(tmp_path / "data")}


def test_cli_indexes_to_the_configured_path_and_searches(cli: tuple[typer.Typer, dict[str, str]], tmp_path: Path) -> None:
    app, env = cli
    runner = CliRunner()
    # When
    built = runner.invoke(app, ["docs", "index", str(DOCS)], env=env)
    # Then
    assert built.exit_code == 0, built.output
    assert (tmp_path / "data" / "docs-index.json").is_file()
    assert "43" in built.output
    assert "index: false" in built.output
    found = runner.invoke(app, ["docs", "search", "framework agreement call-offs", "--k", "2"], env=env)
    assert found.exit_code == 0, found.output
    assert "Framework agreements" in found.output
    assert "possible documentation gap" not in found.output
    gap = runner.invoke(app, ["docs", "search", "The printer toner is low and the paper tray is jammed", "--json"], env=env)
    assert gap.exit_code == 0
    assert json.loads(gap.stdout)["gap"] is True
    spanish = runner.invoke(app, ["docs", "search", "errores de validación de moneda", "--language", "es", "--json"], env=env)
    assert json.loads(spanish.stdout)["suggestions"][0]["url"] == BASE + "/es/herramientas/errores/"


def test_cli_writes_to_out_and_reports_problems(cli: tuple[typer.Typer, dict[str, str]], tmp_path: Path) -> None:
    app, env = cli
    runner = CliRunner()
    built = runner.invoke(app, ["docs", "index", str(DOCS), "--out", str(tmp_path / "x" / "idx.json")], env=env)
    assert built.exit_code == 0
    assert (tmp_path / "x" / "idx.json").is_file()
    assert runner.invoke(app, ["docs", "index", str(tmp_path / "nowhere")], env=env).exit_code == 1
    missing = runner.invoke(app, ["docs", "search", "anything"], env=env)
    assert missing.exit_code == 1
    assert "helpdesk docs index" in missing.output
    gap = runner.invoke(app, ["docs", "search", "printer toner paper tray jammed", "--index", str(tmp_path / "x" / "idx.json")], env=env)
    assert "possible documentation gap" in gap.output
