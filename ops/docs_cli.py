"""`helpdesk docs index SOURCE` and `helpdesk docs search TEXT`: the documentation index behind signposting.

``register(app)`` adds the ``docs`` group to the top-level app; nothing is registered at import time.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from ops.logs import command_settings as _settings

if TYPE_CHECKING:  # the index pulls in numpy (building one, bm25s and SciPy): imported by the commands, not by `helpdesk --help`
    from classifiers.docs.index import DocsIndex

console = Console()
err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add the `docs` group (index, search) to ``app``."""
    docs_app = typer.Typer(no_args_is_help=True, help="Documentation index: build it from a desk's docs, try a search.")
    app.add_typer(docs_app, name="docs")
    docs_app.command("index")(index_command)
    docs_app.command("search")(search_command)


def index_command(
    source: Annotated[Path, typer.Argument(metavar="SOURCE", help="A folder of Markdown/HTML pages, or a sitemap .xml file.")],
    out: Annotated[Path | None, typer.Option("--out", help="Where to write the index (default HELPDESK_DOCS_INDEX or DATA_DIR/docs-index.json).")] = None,
    ranker: Annotated[str | None, typer.Option("--ranker", metavar="NAME",
                                               help="bm25 or lsa (default: the better one in bench/signposting.py).")] = None,
) -> None:
    """Read every page under SOURCE, build the search index and save it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: PLC0415

    from classifiers.docs.errors import DocsError  # noqa: PLC0415
    from classifiers.docs.rankers import DEFAULT_RANKER, RANKERS  # noqa: PLC0415
    from config.docs_sources import page_sources  # noqa: PLC0415
    from workers.intake.docs_index import build_index, save_index  # noqa: PLC0415

    settings = _settings()
    target = out or settings.resolved_docs_index
    ranker = ranker or DEFAULT_RANKER
    if ranker not in RANKERS:
        err.print(f"[red]unknown ranker {ranker!r}[/red]; choose {', '.join(RANKERS)}")
        raise typer.Exit(2)
    try:
        sources = page_sources(source)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err) as progress:
            task = progress.add_task("reading pages", total=len(sources))
            index = build_index(source, ranker=ranker, progress=lambda _item: progress.advance(task), sources=sources)
        save_index(index, target)
    except DocsError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    except OSError as exc:
        err.print(f"[red]cannot write {target}: {exc}[/red]")
        raise typer.Exit(1) from exc
    _print_summary(index, target)


def _print_summary(index: "DocsIndex", target: Path) -> None:
    console.print(f"wrote {target}")
    table = Table(title=f"Pages indexed ({index.ranker.name})", title_justify="left")
    table.add_column("language")
    table.add_column("pages", justify="right")
    for language, count in sorted(index.languages.items()):
        table.add_row(language, str(count))
    table.add_row("[bold]total[/bold]", f"[bold]{len(index.pages)}[/bold]")
    console.print(table)
    if index.skipped:
        reasons = Counter(s.reason for s in index.skipped)
        console.print("skipped: " + "; ".join(f"{n} × {reason}" for reason, n in reasons.most_common()))
    console.print(f"gap threshold {index.gap_score:g} (HELPDESK_DOCS_GAP_SCORE overrides it when > 0)")


def search_command(
    text: Annotated[str, typer.Argument(metavar="TEXT", help="The enquiry text (subject and body).")],
    k: Annotated[int, typer.Option("--k", min=1, max=50, help="How many pages to suggest.")] = 3,
    language: Annotated[str | None, typer.Option("--language", help="The enquiry's language (en, es, fr, pt): pages in it and in English.")] = None,
    index_path: Annotated[Path | None, typer.Option("--index", help="Index file (default HELPDESK_DOCS_INDEX or DATA_DIR/docs-index.json).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON: {suggestions, gap}.")] = False,
) -> None:
    """Suggest documentation pages for TEXT, as a ticket would get them."""
    from classifiers.docs.errors import DocsError  # noqa: PLC0415
    from workers.intake.docs_index import load_index  # noqa: PLC0415

    settings = _settings()
    path = index_path or settings.resolved_docs_index
    try:
        index = load_index(path, gap_score=settings.docs_gap_score or None)
    except DocsError as exc:
        err.print(f"[red]{exc}[/red]\nbuild it with `helpdesk docs index SOURCE`")
        raise typer.Exit(1) from exc
    found = index.search(text, k=k, language=language)
    gap = index.is_gap(found)
    if as_json:
        console.print_json(json.dumps({"suggestions": [s.as_dict() for s in found], "gap": gap}, ensure_ascii=False))
        return
    table = Table(title=f"Suggested pages (of {len(index.pages)})", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("title")
    table.add_column("url", overflow="fold")
    table.add_column("score", justify="right")
    for rank, suggestion in enumerate(found, 1):
        table.add_row(str(rank), suggestion.title, suggestion.url, f"{suggestion.score:.3f}")
    console.print(table)
    if gap:
        console.print(f"[yellow]possible documentation gap[/yellow]: the best match scores below {index.gap_score:g}")
