"""`helpdesk demo`: the whole pipeline on the embedded defaults, with a bundled sample of enquiries.

It runs only on the embedded set-up (SQLite + embedded Redis in the data
folder) and only in a data folder that is empty or holds an earlier demo, so
it can never disturb a real desk's data.
"""

from __future__ import annotations

import email.utils
import re
import shutil
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from config.embedded_redis import stop_embedded_redis
from config.errors import SettingsError
from config.settings import Settings
from ops.runtime import Runtime, prepare_worker
from ops.report_cli import render_matrix, report_data
from ops.views import render_tickets, ticket_rows

SAMPLES = Path(__file__).resolve().parent / "samples" / "enquiries"
MARKER = ".helpdesk-demo"
DOCS = Path(__file__).resolve().parents[1] / "config" / "docs"


def run_demo(settings: Settings, console: Console, *, reset: bool = True) -> dict:
    if not settings.embedded_redis or settings.database_url:
        raise SettingsError("the demo runs on the embedded defaults only: unset HELPDESK_DATABASE_URL and HELPDESK_REDIS_URL")
    _prepare_folder(settings.data_dir, reset)
    console.rule("[bold]helpdesk demo")
    console.print(f"data folder: [bold]{settings.data_dir.resolve()}[/bold] (SQLite + embedded Redis, append-only)")
    started = time.monotonic()
    _index_docs(settings, console)
    samples = dated_samples(SAMPLES, settings.data_dir / "samples", datetime.now(timezone.utc))
    with Runtime(settings) as runtime:
        _train(settings, runtime, console)
        prepare_worker(runtime)
        from ops.intake_cli import import_paths  # noqa: PLC0415 - shares the CLI's progress display

        imported = import_paths(runtime, [samples], label="queueing sample e-mails")
        _drain(runtime, console, imported.queued + imported.rejected)
        data = report_data(runtime, None, None)
        rows = ticket_rows(runtime)
    elapsed = time.monotonic() - started
    _summarise(console, data, rows, settings, elapsed)
    return data


def _index_docs(settings: Settings, console: Console) -> None:
    """The sample desk's documentation, indexed so each ticket gets its suggestions (`helpdesk docs index config/docs`)."""
    from workers.intake.docs_index import build_index, save_index  # noqa: PLC0415

    began = time.monotonic()
    with console.status(f"indexing the documentation in {DOCS} …"):
        index = build_index(DOCS)
        save_index(index, settings.resolved_docs_index)
    console.print(f"documentation index: {len(index.pages)} pages of {DOCS} → {settings.resolved_docs_index} "
                  f"({time.monotonic() - began:.1f} s)")


def _train(settings: Settings, runtime: Runtime, console: Console) -> None:
    """The first run trains the classifier on the shipped examples (some seconds): say so while it does."""
    from config.desk import load_desk  # noqa: PLC0415
    from workers.intake.training import ModelStore, load_or_train  # noqa: PLC0415

    store = ModelStore(settings.resolved_model_dir)
    if store.newest() is not None:
        return
    began = time.monotonic()
    console.print("classifier: training the first model on the shipped examples (first run only, some seconds) …")
    with console.status("training …"):  # a spinner on a terminal; nothing when the output is piped
        models = load_or_train(load_desk(settings), store, runtime.engine)
    console.print(f"classifier: model {models.version} trained in {time.monotonic() - began:.1f} s → {settings.resolved_model_dir}")


_DATE = re.compile(rb"^Date:[ \t]*(?P<value>[^\r\n]*)", re.MULTILINE | re.IGNORECASE)


def dated_samples(source: Path, target: Path, now: datetime) -> Path:
    """The sample e-mails copied to ``target`` with their ``Date`` headers moved into the current month, up to a few
    minutes ago, keeping their order and relative spacing: the month report of the current month holds the whole sample
    (on the first day of a month, the sample takes the last thirty days instead)."""
    mails = sorted(source.glob("*.eml"))
    dates = {path: _date_of(path.read_bytes()) for path in mails}
    known = [d for d in dates.values() if d is not None]
    place = demo_clock(min(known, default=now), max(known, default=now), now)
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for path in mails:
        raw, date = path.read_bytes(), dates[path]
        if date is not None:
            header = _DATE.search(_headers(raw))
            assert header is not None
            moved = email.utils.format_datetime(place(date).astimezone(date.tzinfo)).encode()
            raw = raw[: header.start("value")] + moved + raw[header.end("value"):]
        (target / path.name).write_bytes(raw)
    return target


def demo_clock(oldest: datetime, newest: datetime, now: datetime) -> Callable[[datetime], datetime]:
    """A map of the sample's span [oldest, newest] onto [start of this month, now − 5 minutes], linear and
    order-keeping (whole seconds, as a Date header has them)."""
    end = now.astimezone(timezone.utc).replace(microsecond=0) - timedelta(minutes=5)
    start = end.replace(day=1, hour=0, minute=0, second=0)
    if end - start < timedelta(days=1):
        start = end - timedelta(days=30)
    span = (newest - oldest).total_seconds()

    def place(date: datetime) -> datetime:
        share = (date - oldest).total_seconds() / span if span > 0 else 1.0
        return start + timedelta(seconds=round(share * (end - start).total_seconds()))

    return place


def _headers(raw: bytes) -> bytes:
    end = min((i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0), default=len(raw))
    return raw[:end]


def _date_of(raw: bytes) -> datetime | None:
    found = _DATE.search(_headers(raw))
    if found is None:
        return None
    try:
        date = email.utils.parsedate_to_datetime(found["value"].decode("ascii", "replace"))
    except (TypeError, ValueError):
        return None
    return date if date.tzinfo is not None else date.replace(tzinfo=timezone.utc)


def _prepare_folder(data_dir: Path, reset: bool) -> None:
    if data_dir.exists() and any(data_dir.iterdir()):
        if not (data_dir / MARKER).exists():
            raise SettingsError(
                f"{data_dir} holds data that did not come from a demo; run the demo elsewhere, "
                f"e.g. HELPDESK_DATA_DIR=./demo-data helpdesk demo"
            )
        if reset:
            stop_embedded_redis(data_dir)
            shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / MARKER).write_text("created by `helpdesk demo`; the demo may wipe this folder\n")


def _drain(runtime: Runtime, console: Console, total: int) -> None:
    from config.queues import QUEUES  # noqa: PLC0415
    from workers.ops.runner import run_worker  # noqa: PLC0415

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console)
    with progress:
        task = progress.add_task("processing (dedupe, thread, classify, route, store)", total=total)
        run_worker(
            runtime.broker,
            QUEUES,
            threads=runtime.settings.worker_threads,
            until_idle=True,
            on_poll=lambda unfinished: progress.update(task, completed=max(0, total - unfinished)),
            stop_event=threading.Event(),
        )
        progress.update(task, completed=total)


def _summarise(console: Console, data: dict, rows: list[dict], settings: Settings, elapsed: float) -> None:
    render_tickets(console, rows[:12][::-1])
    if len(rows) > 12:
        console.print(f"… and {len(rows) - 12} more: [bold]helpdesk tickets[/bold]")
    render_matrix(console, "Tickets by enquiry type × enquirer sector", data["type_by_sector"])
    teams = ", ".join(f"{team} {count}" for team, count in data["by_team"].items())
    languages = ", ".join(f"{lang} {count}" for lang, count in data["by_language"].items())
    automated = ", ".join(f"{kind} {count}" for kind, count in data["automated_by_kind"].items()) or "none"
    quarantined = ", ".join(f"{reason} {count}" for reason, count in data["quarantined_by_reason"].items()) or "none"
    console.print(f"[bold]{data['tickets']}[/bold] tickets from [bold]{data['messages']}[/bold] stored messages in {elapsed:.1f} s")
    console.print(f"  by team:            {teams}")
    console.print(f"  by language:        {languages}")
    console.print(f"  replies threaded:   {data['threaded']}")
    console.print(f"  duplicates dropped: {data['duplicates']}")
    console.print(f"  automated (no ticket): {data['automated']} ({automated})")
    console.print(f"  quarantined:        {data['quarantined']} ({quarantined})")
    console.print(f"  needs triage:       {data['needs_triage']}")
    signposted = sum(1 for row in rows if row.get("suggestions"))
    console.print(f"  documentation:      suggestions on {signposted} tickets, {data['docs_gaps']} possible gaps")
    folder = settings.data_dir.resolve()
    console.print(f"data: database {folder / 'helpdesk.db'}, Redis {folder / 'redis'}, raw mail {folder / 'raw'}")
    console.print("next: [bold]helpdesk tickets[/bold] · [bold]helpdesk tickets --json[/bold] · [bold]helpdesk report[/bold] · [bold]helpdesk status[/bold]")
