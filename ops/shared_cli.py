"""What every command module of the `helpdesk` command line shares: consoles, common options, JSON output, ticket numbers."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ops.logs import command_settings as settings

__all__ = ["ByOption", "ColumnsOption", "JsonFlag", "WideFlag", "console", "dump", "err", "progress", "settings", "ticket_number"]

console = Console()
err = Console(stderr=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
WideFlag = Annotated[bool, typer.Option("--wide", help="Show every column, however wide the table gets.")]
ColumnsOption = Annotated[str | None, typer.Option("--columns", metavar="NAMES",
                                                   help="Show these columns (comma-separated), beside the key ones.")]
ByOption = Annotated[str | None, typer.Option("--by", metavar="KEY", help="Who acts: a member key of teams.yaml (default: HELPDESK_STAFF).")]


def dump(data: Any) -> None:
    console.print_json(json.dumps(data, default=_json_default, ensure_ascii=False))


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


def progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err, transient=False)
