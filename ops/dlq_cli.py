"""`helpdesk dlq list|show|replay|purge`: dead letters and quarantined input."""

from __future__ import annotations

from typing import Annotated

import typer

from config.queues import QUEUES
from ops import tables
from ops.runtime import Runtime
from ops.shared_cli import ColumnsOption, JsonFlag, WideFlag, console, dump, err, settings
from ops.views import safe

dlq_app = typer.Typer(no_args_is_help=True, help="Dead letters and quarantined input: list, show, replay, purge.")


def register(app: typer.Typer) -> None:
    app.add_typer(dlq_app, name="dlq")


@dlq_app.command("list")
def dlq_list(
    as_json: JsonFlag = False,
    kind: Annotated[str | None, typer.Option(metavar="KIND", help="dead_letter or rejected (default both).")] = None,
    wide: WideFlag = False,
    columns: ColumnsOption = None,
) -> None:
    """Open dead letters and quarantined input, with their reasons."""
    from workers.ops.dlq import open_letters, sync  # noqa: PLC0415

    s = settings()
    with Runtime(s) as runtime:
        sync(runtime.redis, s.redis_namespace, runtime.engine, QUEUES)
        rows = open_letters(runtime.engine, kind)
    if as_json:
        dump([{k: v for k, v in r._mapping.items() if k not in ("payload", "detail")} for r in rows])
        return
    layout = (tables.Column("id"), tables.Column("kind"), tables.Column("when"), tables.Column("reason", priority=1, flexible=True),
               tables.Column("queue", priority=2), tables.Column("source", priority=3, flexible=True))
    tables.show(console, f"Open dead letters and quarantined input ({len(rows)})", layout,
                [[str(r.id), r.kind, f"{r.created_at:%Y-%m-%d %H:%M}", safe(r.reason), r.queue or "—", safe((r.source or "")[-50:])] for r in rows], tables.Shape.parse(wide, columns))


@dlq_app.command("show")
def dlq_show(ident: Annotated[str, typer.Argument(metavar="ID", help="Id (from `dlq list`) or dramatiq message id.")]) -> None:
    """One dead letter: reason, traceback, payload."""
    from workers.ops.dlq import find  # noqa: PLC0415

    s = settings()
    with Runtime(s) as runtime:
        row = find(runtime.engine, ident)
    if row is None:
        err.print(f"[red]no dead letter {ident}[/red]")
        raise typer.Exit(1)
    console.print(f"[bold]{row.kind} {row.id}[/bold] · {row.status} · queue {row.queue or '—'} · message {row.message_id or '—'}")
    console.print(f"reason: [bold]{row.reason}[/bold] · source: {row.source or '—'} · raw: {row.raw_ref or '—'}")
    console.print(row.detail or "")
    if row.payload:
        dump(row.payload)


@dlq_app.command("replay")
def dlq_replay(
    ids: Annotated[list[str] | None, typer.Argument(metavar="ID", help="Ids to replay.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Replay every open dead letter and quarantined input.")] = False,
) -> None:
    """Enqueue dead letters again (or parse quarantined raw mail again); what was already stored stays single."""
    from workers.ops.dlq import find, open_letters, replay, sync  # noqa: PLC0415

    if not ids and not all_:
        err.print("give ids, or --all")
        raise typer.Exit(2)
    s = settings()
    with Runtime(s) as runtime:
        client = runtime.broker.client
        sync(client, s.redis_namespace, runtime.engine, QUEUES)
        rows = open_letters(runtime.engine) if all_ else [find(runtime.engine, i) for i in ids or []]
        for ident, row in zip(ids or [r.id for r in rows], rows):
            if row is None:
                err.print(f"[red]no dead letter {ident}[/red]")
                continue
            result = replay(client, s.redis_namespace, runtime.broker, runtime.engine, row, runtime.ingestor, runtime.archive)
            console.print(f"{row.kind} {row.id}: {result.outcome}")


@dlq_app.command("purge")
def dlq_purge(yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False) -> None:
    """Drop every dead letter from Redis; the database keeps them, marked purged."""
    from workers.ops.dlq import purge, sync  # noqa: PLC0415

    if not yes and not typer.confirm("Purge every dead letter?"):
        raise typer.Exit(1)
    s = settings()
    with Runtime(s) as runtime:
        sync(runtime.redis, s.redis_namespace, runtime.engine, QUEUES)
        count = purge(runtime.redis, s.redis_namespace, runtime.engine, QUEUES)
    console.print(f"purged {count} dead letter(s)")

