"""What every command module of the `helpdesk` command line shares: consoles, common options, JSON output, ticket numbers."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from ops.logs import command_settings

if TYPE_CHECKING:
    from rich.progress import Progress

    from config.settings import Settings

__all__ = ["ByOption", "ColumnsOption", "JsonFlag", "WideFlag", "console", "dump", "err", "progress", "settings", "ticket_number"]

console = Console()
err = Console(stderr=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
WideFlag = Annotated[bool, typer.Option("--wide", help="Show every column, however wide the table gets.")]
ColumnsOption = Annotated[str | None, typer.Option("--columns", metavar="NAMES",
                                                   help="Show these columns (comma-separated), beside the key ones.")]
ByOption = Annotated[str | None, typer.Option("--by", metavar="KEY", help="Who acts: a member key of teams.yaml (default: HELPDESK_STAFF).")]


def settings(*, process: str | None = None, **overrides: Any) -> "Settings":
    """A command's settings (environment plus ``overrides``), with logging configured by them.

    With ``process`` (a key of ``config.settings.PROCESSES``: ``"worker"``, ``"web"``, ``"intake-imap"``, …), a
    channel that process uses which is half-configured — or the channel it exists for, unconfigured — ends the
    command: one line naming the variables, exit status 2, no traceback.
    """
    loaded = command_settings(**overrides)
    if process is not None:
        from config.settings import startup_problem  # noqa: PLC0415 - pydantic is not needed by `helpdesk --help`

        problem = startup_problem(loaded, process)
        if problem:
            # soft_wrap: one line whatever the terminal's width (a log collector reads lines)
            err.print(f"[red]configuration error:[/red] {escape(problem)}", soft_wrap=True)
            raise typer.Exit(2)
    return loaded


def dump(data: Any) -> None:
    """``data`` as JSON indented by two, in colour on a terminal. Piped, the same text is written as it is: rich's
    highlighting, then thrown away, cost 25 ms per thousand lines (80 ms of a short command, with its import)."""
    text = json.dumps(data, default=_json_default, ensure_ascii=False, indent=2)
    if console.is_terminal:
        console.print_json(text)
    else:
        console.file.write(text + "\n")
        console.file.flush()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def ticket_number(text: str, prefix: str) -> int:
    """The id in ``HD-123``, ``hd-123``, ``#123`` or ``123``; exit 2 for anything else."""
    cleaned = text.strip().upper().removeprefix(f"{prefix.upper()}-").removeprefix("#")
    if not cleaned.isdigit():
        err.print(f"[red]not a ticket number: {text}[/red]")
        raise typer.Exit(2)
    return int(cleaned)


def progress() -> "Progress":
    # only the commands that show a bar import it
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: PLC0415

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err, transient=False)
