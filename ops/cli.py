"""The `helpdesk` command line."""

from __future__ import annotations

import json
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from config.errors import ConfigError
from intake.files import FileAdapter, discover
from ops.logs import command_settings as _settings
from ops.runtime import Runtime, prepare_worker

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Helpdesk intake: enquiries in, classified and routed tickets out.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
app.add_typer(db_app, name="db")


dlq_app = typer.Typer(no_args_is_help=True, help="Dead letters and quarantined input: list, show, replay, purge.")
app.add_typer(dlq_app, name="dlq")
intake_app = typer.Typer(no_args_is_help=True, help="Channel adapters: read a channel and queue what arrives.")
app.add_typer(intake_app, name="intake")


def _register_subcommands() -> None:
    from ops.classify_cli import app as classify_app  # noqa: PLC0415
    from ops.docs_cli import register as register_docs  # noqa: PLC0415
    from ops.x_cli import register as register_x_intake, register_x  # noqa: PLC0415
    from ops.knowledge_cli import register as register_knowledge  # noqa: PLC0415
    from ops.privacy_cli import register as register_privacy  # noqa: PLC0415

    app.add_typer(classify_app, name="classify")
    register_docs(app)
    register_x_intake(intake_app)
    register_x(app)
    register_knowledge(app)
    register_privacy(app)


_register_subcommands()
console = Console()
err = Console(stderr=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def main() -> None:
    exit_cleanly_on_sigterm()
    try:
        app()
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        sys.exit(2)


def exit_cleanly_on_sigterm() -> None:
    """SIGTERM ends the process as Ctrl-C does — unwinding, closing, running atexit — so that an
    embedded Redis it started is shut down with it (the default action would kill it on the spot).
    Long-running commands replace this with their own stop handler while they run."""
    import signal  # noqa: PLC0415

    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)




def _dump(data: Any) -> None:
    console.print_json(json.dumps(data, default=_json_default, ensure_ascii=False))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


@app.command("import")
def import_(paths: Annotated[list[Path], typer.Argument(help=".eml files, folders of them, mbox files or Maildirs.")]) -> None:
    """Queue every message found under PATHS for processing. Exit 1 when nothing in PATHS was recognised as mail."""
    from intake.errors import SinkError  # noqa: PLC0415

    settings = _settings()
    with Runtime(settings) as runtime:
        runtime.wait_for_services(threading.Event(), database=False)  # the queue is in Redis: wait for it (Ctrl-C to give up)
        try:
            result = import_paths(runtime, paths)
        except SinkError as exc:
            err.print(f"[red]Redis went away during the import:[/red] {exc}\nrun the same import again: "
                      "what was queued already is stored once")
            raise typer.Exit(2) from exc
    skipped = unrecognised(paths, result.sources)
    for path, why in skipped[:20]:
        err.print(f"[yellow]not recognised:[/yellow] {path}: {why}")
    if len(skipped) > 20:
        err.print(f"[yellow]… and {len(skipped) - 20} more not recognised[/yellow]")
    console.print(f"queued [bold]{result.queued}[/bold] message(s); quarantined [bold]{result.rejected}[/bold] unreadable item(s) "
                  f"(the worker records them: helpdesk dlq list); not recognised [bold]{len(skipped)}[/bold] file(s)")
    if result.queued + result.rejected == 0:
        err.print("[red]nothing to import:[/red] no .eml file, mbox or Maildir with messages in " + ", ".join(map(str, paths)))
        raise typer.Exit(1)


MAIL_SUFFIXES = {".eml", ".mbox", ".mbx"}


def unrecognised(paths: list[Path], sources: set[str]) -> list[tuple[Path, str]]:
    """Files under ``paths`` that gave no message: not mail files, or mboxes/Maildirs without messages."""
    found: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir() and all((path / sub).is_dir() for sub in ("cur", "new", "tmp")):
            if not any(s.startswith(f"maildir:{path}#") for s in sources):
                found.append((path, "a Maildir without messages"))
        elif path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            if not files:
                found.append((path, "an empty folder"))
            for child in files:
                if child.suffix.lower() not in MAIL_SUFFIXES:
                    found.append((child, "not a mail file (.eml, .mbox, .mbx)"))
                elif not _gave_messages(child, sources):
                    found.append((child, "no messages found in it"))
        elif not _gave_messages(path, sources):
            found.append((path, "no messages found in it (not an mbox or e-mail file)"))
    return found


def _gave_messages(path: Path, sources: set[str]) -> bool:
    return f"file:{path}" in sources or any(s.startswith(f"mbox:{path}#") for s in sources)


def import_paths(runtime: Runtime, paths: list[Path], *, label: str = "importing"):  # noqa: ANN201 - ImportResult
    """Ingest every item under ``paths``; the result also lists the sources read (``.sources``)."""
    try:
        items = discover(paths)
    except FileNotFoundError as exc:
        err.print(f"[red]no such file or folder:[/red] {exc}")
        raise typer.Exit(1) from exc
    adapter = FileAdapter(runtime.ingestor)
    with _progress() as progress:
        task = progress.add_task(label, total=len(items))
        result = adapter.ingest_all(items, progress=lambda _item: progress.advance(task))
    result.sources = {item.source for item in items}
    return result


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err, transient=False)


@app.command()
def worker(
    until_idle: Annotated[bool, typer.Option("--until-idle", help="Exit when every queue is empty and nothing is in flight.")] = False,
    threads: Annotated[int | None, typer.Option(help="Worker threads (default HELPDESK_WORKER_THREADS).")] = None,
) -> None:
    """Process queued messages until stopped (Ctrl-C / SIGTERM)."""
    from workers.actors import QUEUES  # noqa: PLC0415
    from workers.runner import run_worker  # noqa: PLC0415

    from workers.runner import install_signal_handlers  # noqa: PLC0415

    settings = _settings()
    stop = threading.Event()
    install_signal_handlers(stop)
    with Runtime(settings) as runtime:
        if not runtime.wait_for_services(stop):  # started while Redis or the database is down: wait, do not exit
            return
        prepare_worker(runtime)
        if settings.worker_metrics_port:
            _serve_dramatiq_metrics(runtime, settings.worker_metrics_host, settings.worker_metrics_port)
        run_worker(
            runtime.broker,
            QUEUES,
            threads=threads or settings.worker_threads,
            until_idle=until_idle,
            heartbeat_timeout_ms=settings.heartbeat_timeout_seconds * 1000,
            stop_event=stop,
            max_wait_seconds=settings.service_wait_max_seconds,
        )


def _serve_dramatiq_metrics(runtime: Runtime, host: str, port: int) -> None:
    """dramatiq's own Prometheus counters (messages, errors, retries, durations) from this worker on ``host:port``
    (loopback unless HELPDESK_WORKER_METRICS_HOST says otherwise: the port has no authentication)."""
    from dramatiq.middleware.prometheus import DB_PATH, Prometheus  # noqa: PLC0415

    middleware = Prometheus()
    runtime.broker.add_middleware(middleware)
    middleware.after_process_boot(runtime.broker)  # the dramatiq CLI would call this; we run the Worker ourselves
    from prometheus_client import CollectorRegistry, start_http_server  # noqa: PLC0415 - after the multiprocess set-up above
    from prometheus_client.multiprocess import MultiProcessCollector  # noqa: PLC0415

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=DB_PATH)
    start_http_server(port, addr=host, registry=registry)


@app.command()
def status(
    as_json: JsonFlag = False,
    strict: Annotated[bool, typer.Option("--strict", help="Exit non-zero on warnings too.")] = False,
) -> None:
    """Is intake healthy? Queues, throughput, workers, adapters. Exit 1 when unhealthy, 2 when Redis or the database is unreachable."""
    from ops.status import render_status, status_report  # noqa: PLC0415

    settings = _settings()
    with Runtime(settings) as runtime:
        data, code = status_report(runtime, strict=strict)
    if as_json:
        _dump(data)
    else:
        render_status(console, data)
    if code:
        raise typer.Exit(code)


@app.command()
def tickets(
    as_json: JsonFlag = False,
    limit: Annotated[int | None, typer.Option(help="Newest N tickets only.")] = None,
) -> None:
    """One row per ticket: number, status, type, sector, language, team, assignee, priority, channel."""
    from ops.views import ticket_rows, render_tickets  # noqa: PLC0415

    settings = _settings()
    with Runtime(settings) as runtime:
        rows = ticket_rows(runtime, limit)
    if as_json:
        _dump(rows)
    else:
        render_tickets(console, rows)


@app.command()
def report(
    as_json: JsonFlag = False,
    since: Annotated[datetime | None, typer.Option(help="From this date (inclusive, UTC).")] = None,
    until: Annotated[datetime | None, typer.Option(help="Up to this date (exclusive, UTC); default now.")] = None,
    month: Annotated[str | None, typer.Option(help="One calendar month, e.g. 2026-10 (instead of --since/--until).")] = None,
    csv: Annotated[Path | None, typer.Option("--csv", help="Also write one CSV per section into this folder.")] = None,
) -> None:
    """Management information: volumes by month × type/sector/channel/language/team, times, SLA, backlog, enquirers."""
    from ops.views import render_report, report_data, write_csv  # noqa: PLC0415

    if month is not None:
        since, until = _month_bounds(month)
    settings = _settings()
    with Runtime(settings) as runtime:
        data = report_data(runtime, since, until)
    if csv is not None:
        written = write_csv(data, csv)
        err.print(f"wrote {len(written)} CSV files to {csv}")
    if as_json:
        _dump(data)
    else:
        render_report(console, data)


def _month_bounds(month: str) -> tuple[datetime, datetime]:
    try:
        start = datetime.strptime(month, "%Y-%m")
    except ValueError as exc:
        err.print(f"[red]--month takes YYYY-MM, not {month!r}[/red]")
        raise typer.Exit(2) from exc
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


@intake_app.command("imap")
def intake_imap() -> None:
    """Watch the IMAP folders (IDLE, or polling) and queue every message; runs until stopped."""
    import threading  # noqa: PLC0415

    from intake.imap import FolderWatcher, ImapAccount, ImapAdapter, ProcessedMover, WatchOptions  # noqa: PLC0415
    from intake.state import AdapterHealth, ProcessedLog, RedisCheckpointStore  # noqa: PLC0415
    from workers.runner import install_signal_handlers  # noqa: PLC0415

    settings = _settings()
    account = ImapAccount.from_settings(settings)
    stop = threading.Event()
    install_signal_handlers(stop)
    with Runtime(settings) as runtime:
        if not runtime.wait_for_services(stop, database=False):  # the queue and the checkpoints live in Redis
            return
        client, ns = runtime.broker.client, settings.redis_namespace
        checkpoints, health = RedisCheckpointStore(client, ns), AdapterHealth(client, ns)
        options = WatchOptions.from_settings(settings)
        watchers = [FolderWatcher(account, folder, runtime.ingestor, checkpoints, health, options, stop) for folder in account.folders]
        mover = None
        if settings.imap_processed_action != "none":
            mover = ProcessedMover(account, ProcessedLog(client, ns), health, settings.imap_processed_action,
                                   settings.imap_processed_flag, settings.imap_processed_folder, stop)
        console.print(f"watching {', '.join(account.folders)} of {account.name} (Ctrl-C to stop)")
        ImapAdapter(watchers, mover).run(stop)


slack_app = typer.Typer(no_args_is_help=True, help="Slack transports other than the web process.")
app.add_typer(slack_app, name="slack")


@slack_app.command("socket")
def slack_socket() -> None:
    """Receive Slack events, actions and /helpdesk over Socket Mode (no public URL needed); runs until stopped."""
    import threading  # noqa: PLC0415

    from ops.slack_socket import SocketModeIntake  # noqa: PLC0415
    from workers.runner import install_signal_handlers  # noqa: PLC0415

    settings = _settings()
    if not settings.slack_app_token or not settings.slack_bot_token:
        err.print("[red]Socket Mode needs HELPDESK_SLACK_APP_TOKEN (xapp-…) and HELPDESK_SLACK_BOT_TOKEN[/red]")
        raise typer.Exit(2)
    stop = threading.Event()
    install_signal_handlers(stop)
    with Runtime(settings) as runtime:
        if not runtime.wait_for_services(stop):  # events are acknowledged only once queued; slash commands read the database
            return
        intake = SocketModeIntake(runtime)
        console.print("connecting to Slack over Socket Mode (Ctrl-C to stop)")
        intake.run(stop)


@app.command()
def web(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """The web process: /healthz, /readyz, /metrics (and /slack/events with Slack configured)."""
    import uvicorn  # noqa: PLC0415

    from ops.web import build_app  # noqa: PLC0415

    from workers.runner import install_signal_handlers  # noqa: PLC0415

    settings = _settings()
    stop = threading.Event()
    install_signal_handlers(stop)
    with Runtime(settings) as runtime:
        if not runtime.wait_for_services(stop):
            return
        exit_cleanly_on_sigterm()  # uvicorn restores this handler and re-raises the signal once it has shut down
        uvicorn.run(build_app(runtime), host=host, port=port, log_level=settings.log_level.lower(), access_log=False)


@dlq_app.command("list")
def dlq_list(
    as_json: JsonFlag = False,
    kind: Annotated[str | None, typer.Option(help="dead_letter or rejected (default both).")] = None,
) -> None:
    """Open dead letters and quarantined input, with their reasons."""
    from workers.actors import QUEUES  # noqa: PLC0415
    from workers.dlq import open_letters, sync  # noqa: PLC0415

    settings = _settings()
    with Runtime(settings) as runtime:
        sync(runtime.broker.client, settings.redis_namespace, runtime.engine, QUEUES)
        rows = open_letters(runtime.engine, kind)
    if as_json:
        _dump([{k: v for k, v in r._mapping.items() if k not in ("payload", "detail")} for r in rows])
        return
    table = _table(f"Open dead letters and quarantined input ({len(rows)})", ["id", "kind", "queue", "reason", "source", "when"])
    for r in rows:
        table.add_row(str(r.id), r.kind, r.queue or "—", r.reason, (r.source or "")[-50:], f"{r.created_at:%Y-%m-%d %H:%M}")
    console.print(table)


@dlq_app.command("show")
def dlq_show(ident: Annotated[str, typer.Argument(help="Id (from `dlq list`) or dramatiq message id.")]) -> None:
    """One dead letter: reason, traceback, payload."""
    from workers.dlq import find  # noqa: PLC0415

    settings = _settings()
    with Runtime(settings) as runtime:
        row = find(runtime.engine, ident)
    if row is None:
        err.print(f"[red]no dead letter {ident}[/red]")
        raise typer.Exit(1)
    console.print(f"[bold]{row.kind} {row.id}[/bold] · {row.status} · queue {row.queue or '—'} · message {row.message_id or '—'}")
    console.print(f"reason: [bold]{row.reason}[/bold] · source: {row.source or '—'} · raw: {row.raw_ref or '—'}")
    console.print(row.detail or "")
    if row.payload:
        _dump(row.payload)


@dlq_app.command("replay")
def dlq_replay(
    ids: Annotated[list[str] | None, typer.Argument(help="Ids to replay.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Replay every open dead letter and quarantined input.")] = False,
) -> None:
    """Enqueue dead letters again (or parse quarantined raw mail again); what was already stored stays single."""
    from workers.actors import QUEUES  # noqa: PLC0415
    from workers.dlq import find, open_letters, replay, sync  # noqa: PLC0415

    if not ids and not all_:
        err.print("give ids, or --all")
        raise typer.Exit(2)
    settings = _settings()
    with Runtime(settings) as runtime:
        client = runtime.broker.client
        sync(client, settings.redis_namespace, runtime.engine, QUEUES)
        rows = open_letters(runtime.engine) if all_ else [find(runtime.engine, i) for i in ids or []]
        for ident, row in zip(ids or [r.id for r in rows], rows):
            if row is None:
                err.print(f"[red]no dead letter {ident}[/red]")
                continue
            result = replay(client, settings.redis_namespace, runtime.broker, runtime.engine, row, runtime.ingestor, runtime.archive)
            console.print(f"{row.kind} {row.id}: {result.outcome}")


@dlq_app.command("purge")
def dlq_purge(yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False) -> None:
    """Drop every dead letter from Redis; the database keeps them, marked purged."""
    from workers.actors import QUEUES  # noqa: PLC0415
    from workers.dlq import purge, sync  # noqa: PLC0415

    if not yes and not typer.confirm("Purge every dead letter?"):
        raise typer.Exit(1)
    settings = _settings()
    with Runtime(settings) as runtime:
        sync(runtime.broker.client, settings.redis_namespace, runtime.engine, QUEUES)
        count = purge(runtime.broker.client, settings.redis_namespace, runtime.engine, QUEUES)
    console.print(f"purged {count} dead letter(s)")


@app.command()
def scheduler() -> None:
    """Run the periodic jobs (SLA warnings and escalations, backlog, reassignment, digests); runs until stopped."""
    import threading  # noqa: PLC0415

    from workers.runner import install_signal_handlers  # noqa: PLC0415
    from workers.scheduler import run_scheduler  # noqa: PLC0415

    settings = _settings()
    stop = threading.Event()
    install_signal_handlers(stop)
    with Runtime(settings) as runtime:
        if not runtime.wait_for_services(stop, database=False):  # it only enqueues: Redis is what it needs
            return
        console.print(f"scheduling every {settings.scheduler_tick_seconds} s (Ctrl-C to stop)")
        run_scheduler(runtime.broker, settings.redis_namespace, settings.scheduler_tick_seconds, stop)


@app.command()
def reclassify(
    ticket: Annotated[str, typer.Argument(help="Ticket number, e.g. HD-123.")],
    by: Annotated[str | None, typer.Option(help="Who corrects it: a member key of teams.yaml (default: HELPDESK_STAFF).")] = None,
    type_: Annotated[str | None, typer.Option("--type", help="The right enquiry type.")] = None,
    sector: Annotated[str | None, typer.Option(help="The right sector.")] = None,
) -> None:
    """Correct a ticket's type and/or sector; the correction becomes training data."""
    from config.desk import load_desk  # noqa: PLC0415
    from storage.corrections import UnknownTicket, record_correction  # noqa: PLC0415

    settings = _settings()
    taxonomy = load_desk(settings).taxonomy
    ticket_id = _ticket_number(ticket, settings.ticket_prefix)
    changes = [("type", type_, taxonomy.types), ("sector", sector, taxonomy.sectors)]
    if not any(value for _, value, _ in changes):
        err.print("give --type and/or --sector")
        raise typer.Exit(2)
    with Runtime(settings) as runtime:
        by = _actor(runtime, by or settings.staff, "reclassify", f"{settings.ticket_prefix}-{ticket_id}")
        for field, value, allowed in changes:
            if value is None:
                continue
            if value not in allowed:
                err.print(f"[red]unknown {field} {value!r}[/red]; one of: {', '.join(allowed)}")
                raise typer.Exit(2)
            key = f"cli:{ticket_id}:{field}:{value}:{by}"
            try:
                result = record_correction(runtime.engine, ticket_id=ticket_id, field=field, new_value=value, by=by, key=key)
            except UnknownTicket as exc:
                err.print(f"[red]no ticket {ticket}[/red]")
                raise typer.Exit(1) from exc
            note = "" if result.recorded else " (already recorded)"
            console.print(f"{settings.ticket_prefix}-{ticket_id} {field}: {result.old_value} → {value}{note}")


@app.command()
def reply(
    ticket: Annotated[str | None, typer.Argument(help="Ticket number, e.g. HD-123.")] = None,
    text: Annotated[str | None, typer.Argument(help="The reply (or use --canned, or --file).")] = None,
    by: Annotated[str | None, typer.Option(help="Who answers (a member key of teams.yaml).")] = None,
    canned: Annotated[str | None, typer.Option(help="Send this canned reply of templates.yaml, filled in for the ticket.")] = None,
    file: Annotated[Path | None, typer.Option(help="Read the reply from this file ('-' for standard input).")] = None,
    note: Annotated[bool, typer.Option("--note", help="An internal note: never sent to the enquirer.")] = False,
    with_docs: Annotated[bool, typer.Option("--with-docs", help="Append the ticket's documentation suggestions.")] = False,
    list_canned: Annotated[bool, typer.Option("--list-canned", help="List the canned replies.")] = False,
    send_queued: Annotated[bool, typer.Option("--send-queued", help="Send replies held while their channel had no sender.")] = False,
    resend: Annotated[int | None, typer.Option(help="Queue a failed reply (by message id) once more.")] = None,
) -> None:
    """Answer a ticket's enquirer on their own channel (sent by the worker), or add an internal note."""
    from config.desk import load_desk  # noqa: PLC0415
    from storage.models import utcnow  # noqa: PLC0415
    from workers.actors import enqueue_effect  # noqa: PLC0415
    from workers.desk import Desk, add_staff_message  # noqa: PLC0415
    from workers.replies import UnknownCanned, render_canned, resend as resend_message, send_queued as release_queued, suggestions_text  # noqa: PLC0415

    settings = _settings()
    desk = Desk(load_desk(settings), settings.ticket_prefix)
    templates = desk.config.templates
    if list_canned:
        table = _table("Canned replies", ["name", "title", "languages"])
        for name, entry in templates.canned.items():
            table.add_row(name, entry.title, ", ".join(entry.text))
        console.print(table)
        return
    with Runtime(settings) as runtime:
        if send_queued or resend is not None:
            keys = release_queued(runtime.engine) if send_queued else [k for k in [resend_message(runtime.engine, resend or 0)] if k]
            for key in keys:
                enqueue_effect(runtime.broker, key)
            if resend is not None and not keys:
                err.print(f"[red]message {resend} is not a failed reply[/red]")
                raise typer.Exit(1)
            console.print(f"queued {len(keys)} repl{'y' if len(keys) == 1 else 'ies'} for sending")
            return
        by = by or settings.staff
        if ticket is None or not by:
            err.print("give a ticket number and --by (or set HELPDESK_STAFF; or --list-canned, --send-queued, --resend ID)")
            raise typer.Exit(2)
        ticket_id = _ticket_number(ticket, settings.ticket_prefix)
        by = _actor(runtime, by, "note" if note else "reply", f"{settings.ticket_prefix}-{ticket_id}")
        try:
            body = _reply_text(text, file) if canned is None else render_canned(runtime.engine, desk, ticket_id, canned, agent=by)
        except (UnknownCanned, LookupError) as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from exc
        if with_docs:
            from sqlalchemy import select  # noqa: PLC0415

            from storage.intake_store import TICKET  # noqa: PLC0415

            with runtime.engine.connect() as c:
                row = c.execute(select(TICKET).where(TICKET.c.id == ticket_id)).first()
            body = body.rstrip() + "\n" + (suggestions_text(row, templates) if row is not None else "")
        if not body.strip():
            err.print("[red]the reply is empty[/red]")
            raise typer.Exit(2)
        now = utcnow()
        message_id, effect = add_staff_message(runtime.engine, ticket_id, body, now, author=by, key=f"cli:{by}:{now.isoformat()}", note=note)
        if message_id is None:
            err.print(f"[red]there is no {settings.ticket_prefix}-{ticket_id}[/red]")
            raise typer.Exit(1)
        if effect:
            enqueue_effect(runtime.broker, effect)
        what = "note added to" if note else "reply queued on"
        console.print(f"{what} {settings.ticket_prefix}-{ticket_id} (message {message_id})")


def _actor(runtime: Runtime, by: str | None, action: str, target: str) -> str:
    """The key of whoever acts at the command line, if their roles allow ``action``; else refused (exit 1) and audited."""
    import uuid  # noqa: PLC0415

    from rich.markup import escape  # noqa: PLC0415

    from config.desk import load_desk  # noqa: PLC0415
    from storage import audit  # noqa: PLC0415
    from workers.permissions import Forbidden, Staff  # noqa: PLC0415

    try:
        return Staff(load_desk(runtime.settings)).authorise(by, action).key
    except Forbidden as exc:
        audit.record(runtime.engine, f"refused:cli:{by}:{action}:{uuid.uuid4().hex}", actor=by or "nobody", surface="cli",
                     action=action, target=target, outcome="refused", detail={"reason": exc.reason})
        err.print(f"[red]refused:[/red] {escape(exc.reason)}")
        raise typer.Exit(1) from exc


def _reply_text(text: str | None, file: Path | None) -> str:
    if file is not None:
        return sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
    return text or ""


def _ticket_number(text: str, prefix: str) -> int:
    cleaned = text.strip().upper().removeprefix(f"{prefix}-").removeprefix("#")
    if not cleaned.isdigit():
        err.print(f"[red]not a ticket number: {text}[/red]")
        raise typer.Exit(2)
    return int(cleaned)


@app.command()
def reprocess(
    ticket: Annotated[list[str] | None, typer.Option("--ticket", help="Only these tickets (repeat the option).")] = None,
    since: Annotated[datetime | None, typer.Option(help="Tickets opened from this date (UTC).")] = None,
    until: Annotated[datetime | None, typer.Option(help="Tickets opened before this date (UTC).")] = None,
    reparse: Annotated[bool, typer.Option("--reparse", help="Parse the archived raw mail again first.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change; change nothing.")] = False,
) -> None:
    """Classify stored tickets again with the current model (staff corrections are kept)."""
    from classifiers.pipeline import EnquiryClassifier  # noqa: PLC0415
    from config.desk import load_desk  # noqa: PLC0415
    from intake.quoting import ReplySplitter  # noqa: PLC0415
    from ops.views import _aware  # noqa: PLC0415
    from workers.reprocess import opening_messages  # noqa: PLC0415
    from workers.reprocess import reprocess as run  # noqa: PLC0415
    from workers.training import ModelStore, load_or_train  # noqa: PLC0415

    settings = _settings()
    desk = load_desk(settings)
    ids = [_ticket_number(t, settings.ticket_prefix) for t in ticket or []]
    with Runtime(settings) as runtime:
        models = load_or_train(desk, ModelStore(settings.resolved_model_dir), runtime.engine)
        classifier = EnquiryClassifier(desk, settings.triage_confidence, models)
        rows = opening_messages(runtime.engine, ids or None, _aware(since), _aware(until))
        with _progress() as progress:
            task = progress.add_task(f"reprocessing with model {classifier.version}", total=len(rows))
            result = run(runtime.engine, classifier, rows, archive=runtime.archive if reparse else None, limits=runtime.limits,
                         splitter=ReplySplitter(settings.languages), dry_run=dry_run, progress=lambda: progress.advance(task))
    table = _table(f"{'Would change' if dry_run else 'Changed'} ({result.tickets} tickets, model {classifier.version})",
                   ["label", "tickets changed"])
    for name, n in result.changed.items():
        table.add_row(name, str(n))
    console.print(table)
    if reparse:
        console.print(f"re-parsed from the raw archive: {result.reparsed}")
    if result.kept_corrections:
        console.print(f"staff corrections kept: {result.kept_corrections}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    from storage import schema  # noqa: PLC0415

    settings = _settings()
    with Runtime(settings) as runtime:
        runtime.engine  # noqa: B018 - creating the engine migrates it
        console.print(f"database at revision [bold]{schema.current_revision(runtime.engine)}[/bold]")


@app.command()
def demo(
    reset: Annotated[bool, typer.Option(help="Start from an empty data folder even if a previous demo left data.")] = True,
) -> None:
    """Import the bundled sample enquiries, process them, and summarise — no servers or accounts needed."""
    from ops.demo import run_demo  # noqa: PLC0415

    settings = _settings(log_level="WARNING")
    run_demo(settings, console, reset=reset)


def _table(title: str, columns: list[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    return table
