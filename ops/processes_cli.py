"""The long-running processes and the set-up commands: worker, scheduler, web, Slack Socket Mode, status,
db upgrade, reprocess, demo."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Annotated

import typer

from config.queues import QUEUES
from ops import tables
from ops.runtime import Runtime, prepare_worker
from ops.shared_cli import ColumnsOption, JsonFlag, WideFlag, console, dump, progress, settings, ticket_number

db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
slack_app = typer.Typer(no_args_is_help=True, help="Slack transports other than the web process.")


def register(app: typer.Typer) -> None:
    for command in (worker, status, web, scheduler, reprocess, demo):
        app.command()(command)
    app.add_typer(db_app, name="db")
    app.add_typer(slack_app, name="slack")


def worker(
    until_idle: Annotated[bool, typer.Option("--until-idle", help="Exit when every queue is empty and nothing is in flight.")] = False,
    threads: Annotated[int | None, typer.Option(metavar="N", help="Worker threads (default HELPDESK_WORKER_THREADS).")] = None,
    processes: Annotated[int, typer.Option(metavar="N", min=1, help="Worker processes, each with its --threads (one core each).")] = 1,
) -> None:
    """Process queued messages until stopped (Ctrl-C / SIGTERM)."""
    from workers.ops.observability import use_metrics_dir  # noqa: PLC0415
    from workers.ops.runner import install_signal_handlers  # noqa: PLC0415

    use_metrics_dir()  # first: prometheus_client picks multiprocess mode at import (children inherit it)
    return_large_blocks()
    s = settings(process="worker")
    stop = threading.Event()
    install_signal_handlers(stop)
    with Runtime(s) as runtime:
        starting = runtime.start_redis_in_background()
        if processes == 1:
            import workers.actors  # noqa: F401, PLC0415 - the worker's code (0.4 s), imported while an embedded Redis boots
        else:
            from workers.ops.preload import preload  # noqa: PLC0415

            preload(s)  # the worker's code and read-only data, once for every child (1.5 s), while an embedded Redis boots
        if not runtime.wait_for_services(stop):  # started while Redis or the database is down: wait, do not exit
            return
        if processes == 1:
            _run_worker(runtime, threads, until_idle, stop)
            return
        from ops.worker_pool import WorkerPool, forking  # noqa: PLC0415

        if starting is not None:
            starting.join()  # no thread but this one may be running at a fork
        runtime.disconnect()  # the children open their own connections: none may be shared across a fork

        def child(index: int, own_stop: threading.Event) -> int:
            with Runtime(s) as own:
                if own.wait_for_services(own_stop):
                    # every child records its metrics (the multiprocess files); the first serves them all on the port
                    _run_worker(own, threads, until_idle, own_stop, serve_metrics=index == 0)
            return 0

        status = WorkerPool(processes, forking(child), until_idle=until_idle, stop=stop).run()
        raise typer.Exit(status)


def _run_worker(runtime: Runtime, threads: int | None, until_idle: bool, stop: threading.Event, *, serve_metrics: bool = True) -> None:
    from workers.ops.runner import run_worker  # noqa: PLC0415

    s = runtime.settings
    prepare_worker(runtime)
    if s.worker_metrics_port:
        _record_dramatiq_metrics(runtime)
        if serve_metrics:
            _serve_worker_metrics(s.worker_metrics_host, s.worker_metrics_port)
    run_worker(
        runtime.broker,
        QUEUES,
        threads=threads or s.worker_threads,
        until_idle=until_idle,
        stop_event=stop,
        max_wait_seconds=s.service_wait_max_seconds,
    )


MMAP_THRESHOLD = 128 * 1024


def return_large_blocks() -> None:
    """Have glibc give every block of 128 KiB or more its own mapping, returned to the system when freed.

    glibc raises that threshold by itself after a large block is freed, and then keeps later large blocks in its
    heaps: the language detector's temporary buffers while its models load (≈ 43 MB) stayed in the worker's resident
    set. Measured with ``bench/memory.py``: peak 281–306 → 244–252 MB; no slower on ``bench/classify.py``.
    Elsewhere than glibc nothing happens.
    """
    import ctypes  # noqa: PLC0415

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(-3, MMAP_THRESHOLD)  # M_MMAP_THRESHOLD


def _record_dramatiq_metrics(runtime: Runtime) -> None:
    """dramatiq's own counters (messages, errors, retries, durations) for this process, in the multiprocess files."""
    from dramatiq.middleware.prometheus import Prometheus  # noqa: PLC0415

    middleware = Prometheus()
    runtime.broker.add_middleware(middleware)
    middleware.after_process_boot(runtime.broker)  # the dramatiq CLI would call this; we run the Worker ourselves


def _serve_worker_metrics(host: str, port: int) -> None:
    """The workers' Prometheus metrics of this host — dramatiq's counters and the intake → stored-message histogram of
    every worker process, read from the multiprocess files — on ``host:port`` (loopback unless
    HELPDESK_WORKER_METRICS_HOST says otherwise: the port has no authentication). In a pool one child serves them
    all, as dramatiq's own command does; with workers on several hosts, Prometheus scrapes each and sums."""
    from prometheus_client import CollectorRegistry, start_http_server  # noqa: PLC0415 - after the multiprocess set-up

    from ops.metrics import WorkerMetricsCollector  # noqa: PLC0415
    from workers.ops.observability import metrics_dir  # noqa: PLC0415

    registry = CollectorRegistry()
    registry.register(WorkerMetricsCollector(metrics_dir()))
    start_http_server(port, addr=host, registry=registry)


def status(
    as_json: JsonFlag = False,
    strict: Annotated[bool, typer.Option("--strict", help="Exit non-zero on warnings too.")] = False,
    wide: WideFlag = False,
    columns: ColumnsOption = None,
) -> None:
    """Is intake healthy? Queues, throughput, workers, adapters. Exit 1 when unhealthy, 2 when Redis or the database is unreachable."""
    s = settings()
    with Runtime(s) as runtime:
        runtime.start_redis_in_background()
        from ops.status import render_status, status_report  # noqa: PLC0415 - imported while an embedded Redis boots

        data, code = status_report(runtime, strict=strict)
    if as_json:
        dump(data)
    else:
        render_status(console, data, tables.Shape.parse(wide, columns))
    if code:
        raise typer.Exit(code)


@slack_app.command("socket")
def slack_socket() -> None:
    """Receive Slack events, actions and /helpdesk over Socket Mode (no public URL needed); runs until stopped."""
    from ops.slack_socket import SocketModeIntake  # noqa: PLC0415
    from workers.ops.runner import install_signal_handlers  # noqa: PLC0415

    s = settings(process="slack-socket")
    stop = threading.Event()
    install_signal_handlers(stop)
    with Runtime(s) as runtime:
        if not runtime.wait_for_services(stop):  # events are acknowledged only once queued; slash commands read the database
            return
        intake = SocketModeIntake(runtime)
        console.print("connecting to Slack over Socket Mode (Ctrl-C to stop)")
        intake.run(stop)


def web(
    host: Annotated[str, typer.Option(metavar="HOST", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="PORT", help="Port to listen on.")] = 8000,
) -> None:
    """The web process: /healthz, /readyz, /metrics (and /slack/events with Slack configured)."""
    import uvicorn  # noqa: PLC0415

    from ops.web import build_app  # noqa: PLC0415

    from workers.ops.runner import install_signal_handlers  # noqa: PLC0415

    s = settings(process="web")
    stop = threading.Event()
    install_signal_handlers(stop)
    with Runtime(s) as runtime:
        if not runtime.wait_for_services(stop):
            return
        from ops.signals import exit_cleanly_on_sigterm  # noqa: PLC0415

        exit_cleanly_on_sigterm()  # uvicorn restores this handler and re-raises the signal once it has shut down
        uvicorn.run(build_app(runtime), host=host, port=port, log_level=s.log_level.lower(), access_log=False)



def scheduler() -> None:
    """Run the periodic jobs (SLA warnings and escalations, backlog, reassignment, digests); runs until stopped."""
    from workers.ops.runner import install_signal_handlers  # noqa: PLC0415
    from workers.desk.scheduler import run_scheduler  # noqa: PLC0415

    s = settings()
    stop = threading.Event()
    install_signal_handlers(stop)
    with Runtime(s) as runtime:
        if not runtime.wait_for_services(stop, database=False):  # it only enqueues: Redis is what it needs
            return
        console.print(f"scheduling every {s.scheduler_tick_seconds} s (Ctrl-C to stop)")
        run_scheduler(runtime.broker, s.redis_namespace, s.scheduler_tick_seconds, stop)



def reprocess(
    ticket: Annotated[list[str] | None, typer.Option("--ticket", help="Only these tickets (repeat the option).")] = None,
    since: Annotated[datetime | None, typer.Option(metavar="DATE", help="Tickets opened from this date (UTC).")] = None,
    until: Annotated[datetime | None, typer.Option(metavar="DATE", help="Tickets opened before this date (UTC).")] = None,
    reparse: Annotated[bool, typer.Option("--reparse", help="Parse the archived raw mail again first.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change; change nothing.")] = False,
) -> None:
    """Classify stored tickets again with the current model (staff corrections are kept)."""
    from classifiers.pipeline import EnquiryClassifier  # noqa: PLC0415
    from config.desk import load_desk  # noqa: PLC0415
    from intake.quoting import ReplySplitter  # noqa: PLC0415
    from ops.report_cli import _aware  # noqa: PLC0415
    from workers.intake.reprocess import opening_messages  # noqa: PLC0415
    from workers.intake.reprocess import reprocess as run  # noqa: PLC0415
    from workers.intake.training import ModelStore, load_or_train  # noqa: PLC0415

    s = settings()
    desk = load_desk(s)
    ids = [ticket_number(t, s.ticket_prefix) for t in ticket or []]
    with Runtime(s) as runtime:
        models = load_or_train(desk, ModelStore(s.resolved_model_dir), runtime.engine)
        classifier = EnquiryClassifier(desk, s.triage_confidence, models)
        rows = opening_messages(runtime.engine, ids or None, _aware(since), _aware(until))
        with progress() as bar:
            task = bar.add_task(f"reprocessing with model {classifier.version}", total=len(rows))
            result = run(runtime.engine, classifier, rows, archive=runtime.archive if reparse else None, limits=runtime.limits,
                         splitter=ReplySplitter(s.languages), dry_run=dry_run, progress=lambda: bar.advance(task))
    tables.show(console, f"{'Would change' if dry_run else 'Changed'} ({result.tickets} tickets, model {classifier.version})",
                (tables.Column("label"), tables.Column("tickets changed", justify="right")),
                [[name, str(n)] for name, n in result.changed.items()])
    if reparse:
        console.print(f"re-parsed from the raw archive: {result.reparsed}")
    if result.kept_corrections:
        console.print(f"staff corrections kept: {result.kept_corrections}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    from storage import schema  # noqa: PLC0415

    with Runtime(settings()) as runtime:
        runtime.engine  # noqa: B018 - creating the engine migrates it
        console.print(f"database at revision [bold]{schema.current_revision(runtime.engine)}[/bold]")


def demo(
    reset: Annotated[bool, typer.Option(help="Start from an empty data folder even if a previous demo left data.")] = True,
) -> None:
    """Import the bundled sample enquiries, process them, and summarise — no servers or accounts needed."""
    from ops.demo import run_demo  # noqa: PLC0415

    run_demo(settings(log_level="WARNING"), console, reset=reset)
