"""The X channel on the command line: `helpdesk intake x` (the adapter) and `helpdesk x gaps …` (what X could not show).

``register(intake_app)`` adds ``x`` to the ``intake`` group and ``register_x(app)``
adds the ``x`` group to the top-level app; nothing is registered at import time.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ops.runtime import Runtime
from ops.shared_cli import settings as _settings

console = Console()
err = Console(stderr=True)




def register(intake_app: typer.Typer) -> None:
    """Add `intake x`: poll the helpdesk account's mentions and DMs and queue each enquiry."""

    @intake_app.command("x")
    def intake_x(
        once: Annotated[bool, typer.Option("--once", help="Poll each stream one time, print a summary, exit (1 if a poll failed).")] = False,
        backfill: Annotated[bool, typer.Option("--backfill", help="On the very first run, queue what X still shows (up to 800 "
                                                                  "mentions, 30 days of DMs) instead of starting from now.")] = False,
    ) -> None:
        """Poll X for mentions and direct messages and queue every enquiry; runs until stopped (or --once)."""
        from intake.x import run_x  # noqa: PLC0415
        from intake.x_api import XAccount  # noqa: PLC0415
        from workers.ops.runner import install_signal_handlers  # noqa: PLC0415

        settings = _settings(process="intake-x")  # a half-configured X account stops here, naming what is missing
        account = XAccount.from_group(settings.x)
        stop = threading.Event()
        install_signal_handlers(stop)
        with Runtime(settings) as runtime:
            if not once:
                streams = "mentions and DMs" if account.user_context else "mentions (no user-context keys: no DMs)"
                console.print(f"polling {streams} of X account {account.account_id} every {account.poll_seconds:.0f} s (Ctrl-C to stop)")
            results = run_x(settings, stop, sink=runtime.sink, client=runtime.broker.client, once=once, backfill=backfill)
            gaps = _gap_log(runtime).open() if once else []
        if once:
            _print_polls(results, gaps)
            if any(r.error and not r.rate_limited for r in results):
                raise typer.Exit(1)


def register_x(app: typer.Typer) -> None:
    """Add the `x` group: `x gaps` lists spans X could no longer show us, `x gaps --ack` marks them read."""
    x_app = typer.Typer(no_args_is_help=True, help="The X channel: gaps in what the API could still show, checkpoints.")
    app.add_typer(x_app, name="x")

    @x_app.command("gaps")
    def x_gaps(
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
        show_all: Annotated[bool, typer.Option("--all", help="Include acknowledged gaps.")] = False,
        ack: Annotated[str | None, typer.Option("--ack", help="Acknowledge every open gap as read on X by this person.")] = None,
    ) -> None:
        """Mentions or DMs X no longer returned after an outage (the mentions timeline reaches 800, DMs 30 days)."""
        settings = _settings()
        with Runtime(settings) as runtime:
            log = _gap_log(runtime)
            if ack:
                count = log.acknowledge(ack)
                console.print(f"acknowledged {count} gap(s)")
                return
            gaps = log.all() if show_all else log.open()
        if as_json:
            console.print_json(json.dumps(gaps))
            return
        console.print(_gap_table(gaps, "X gaps" if show_all else "Open X gaps"))
        if gaps and not show_all:
            console.print("read those mentions or DMs on X, then `helpdesk x gaps --ack NAME`")

    @x_app.command("checkpoints")
    def x_checkpoints() -> None:
        """The newest mention and DM id queued per account and stream, and when that was."""
        from intake.state import RedisCheckpointStore  # noqa: PLC0415
        from intake.x_api import snowflake_time  # noqa: PLC0415
        from intake.x_memory import ADAPTER  # noqa: PLC0415

        settings = _settings()
        with Runtime(settings) as runtime:
            rows = RedisCheckpointStore(runtime.redis, settings.redis_namespace).all(ADAPTER)
        table = _table("X checkpoints", ["account/stream", "newest id", "made at (UTC)", "updated"])
        for name, value in sorted(rows.items()):
            last = int(value["last_uid"])
            updated = value.get("updated_at")
            table.add_row(name, str(last), f"{snowflake_time(last):%Y-%m-%d %H:%M:%S}", _when(updated) if updated else "—")
        console.print(table)


def _gap_log(runtime: Runtime) -> Any:  # intake.x_memory.GapLog
    from intake.state import AdapterHealth  # noqa: PLC0415
    from intake.x_memory import GapLog  # noqa: PLC0415

    client, namespace = runtime.redis, runtime.settings.redis_namespace
    return GapLog(client, namespace, AdapterHealth(client, namespace))


def _print_polls(results: list[Any], gaps: list[dict[str, Any]]) -> None:
    table = _table("X poll", ["stream", "read", "queued", "skipped", "checkpoint", "next poll (UTC)", "problem"])
    for r in results:
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(r.skipped.items())) or "—"
        problem = f"[yellow]{r.error}[/yellow]" if r.rate_limited else f"[red]{r.error}[/red]" if r.error else ""
        if r.gap:
            problem = f"[red]gap:[/red] {r.gap['detail']}"
        table.add_row(r.stream, str(r.read), str(r.enqueued), skipped, str(r.checkpoint or "—"), _when(r.next_poll_at), problem)
    console.print(table)
    if gaps:
        console.print(_gap_table(gaps, "Open X gaps"))


def _gap_table(gaps: list[dict[str, Any]], title: str) -> Table:
    table = _table(f"{title} ({len(gaps)})", ["account", "stream", "from (UTC)", "until (UTC)", "detected", "acknowledged"])
    for gap in gaps:
        table.add_row(gap["account"], gap["stream"], gap["from"][:16].replace("T", " "), gap["until"][:16].replace("T", " "),
                      _when(gap["detected_at"]), gap.get("acknowledged_by") or "—")
    return table


def _when(epoch: float | str) -> str:
    return datetime.fromtimestamp(float(epoch), timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _table(title: str, columns: list[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    return table
