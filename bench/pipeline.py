"""Benchmark: N messages through the real pipeline vs a bare no-op dramatiq actor, same Redis, same worker settings.

    python bench/pipeline.py [--messages 3000] [--threads 8] [--runs 1] [--database-url URL] [--redis-url URL]
    python bench/pipeline.py --processes 1,2,4 --database-url postgresql://127.0.0.1/test [--threads 4]

Both runs enqueue their N messages first (not timed), then time one worker
process draining the queue. The no-op run uses a plain RedisBroker with
dramatiq's default middleware; the pipeline run uses our broker and
middleware, classifies, routes and stores every message (SQLite in a temp
folder unless --database-url is given). The mix is 70% new enquiries, 10%
replies and 20% exact repeats. Prints both rates and their ratio (target ≥ 0.6).
With ``--runs N`` the two run N times, alternating (each pipeline run on a
database of its own), and the ratio printed is the median of the N: this
machine's speed changes by a third from one minute to the next, more than the
ratio's distance to its target.

The pipeline's messages are queued as an adapter reading many at once queues
them (``QueueSink.put_many``: batches of ``--batch`` messages, one transaction
each, the default being what the adapters use); the run is repeated with
``--batch 1`` — one queue message per message, as a live message travels — and
both are printed. The no-op actor gets one queue message per message.

With ``--processes``, each count P runs as deployed: ``helpdesk worker
--processes P --threads T --until-idle`` (a subprocess) against the no-op actor
in P processes of its own. Rates are taken over the drain itself (first to last
message handled: the no-op processes note their own times, the pipeline's are
the stored rows' ``stored_at``), so start-up is left out of both. Prints the
rates, their ratio and how the pipeline grows with P. On PostgreSQL every run
has a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.broker import close_broker  # noqa: E402
from config.queues import BATCH_MAX_MESSAGES  # noqa: E402
from config.embedded_redis import start_embedded_redis  # noqa: E402
from config.settings import load_settings  # noqa: E402
from intake.message import InboundMessage  # noqa: E402
from intake.mime import parse_email  # noqa: E402
from ops.runtime import Runtime, prepare_worker  # noqa: E402
from workers.ops.runner import WORKER_TIMEOUT_MS  # noqa: E402
from tests.test_end_to_end import SENDERS, SUBJECTS  # noqa: E402
from tests.factories import make_email  # noqa: E402

QUEUE = "intake"


def sample_messages(n: int, seed: int = 11) -> list[InboundMessage]:
    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    out: list[InboundMessage] = []
    originals: list[int] = []
    while len(out) < n:
        i = len(out)
        roll = rng.random()
        if roll < 0.2 and out:
            out.append(rng.choice(out))
            continue
        if roll < 0.3 and originals:
            parent = rng.choice(originals)
            raw = make_email(sender=SENDERS[parent % 6], subject=f"Re: {SUBJECTS[parent % 4]} #{parent}",
                             body=f"Thanks, here is more detail on enquiry {parent}.", message_id=f"<r{i}@bench>",
                             in_reply_to=f"<o{parent}@bench>", references=f"<o{parent}@bench>")
        else:
            originals.append(i)
            body = (f"Hello, enquiry {i}: we publish contracting data and the review tool reports validation errors "
                    f"for tender/value and buyer.id. Could you explain the codelist and how to map our system? " * 3)
            raw = make_email(sender=SENDERS[i % 6], subject=f"{SUBJECTS[i % 4]} #{i}", body=body, message_id=f"<o{i}@bench>")
        out.append(parse_email(raw, received_at=now, source="bench", raw_ref=None).message)
    return out


def drain(broker: RedisBroker, threads: int) -> float:
    # As `helpdesk worker` runs it: a consumer with nothing to fetch sleeps at most WORKER_TIMEOUT_MS between looks,
    # and acknowledges its finished messages only between looks. dramatiq's default (1 s) left the last batches
    # unacknowledged for up to a second after they were stored (on both sides alike, but a no-op's last messages
    # finish before its consumer's sleeps grow long, a pipeline's last batches do not).
    worker = dramatiq.Worker(broker, worker_threads=threads, queues={QUEUE}, worker_timeout=WORKER_TIMEOUT_MS)
    started = time.perf_counter()
    worker.start()
    broker.join(QUEUE, interval=20)
    worker.join()
    elapsed = time.perf_counter() - started
    worker.stop()
    return elapsed


def run_noop(url: str, payloads: list[str], threads: int) -> float:
    broker = RedisBroker(url=url, namespace=f"bench-noop-{uuid.uuid4().hex[:8]}")

    def noop(payload: str) -> None:
        pass

    actor = dramatiq.actor(noop, broker=broker, queue_name=QUEUE, actor_name="noop")
    try:  # the namespace's keys go even if queueing fails part way
        for payload in payloads:
            actor.send(payload)
        return drain(broker, threads)
    finally:
        _cleanup(broker)


def queue_messages(runtime: Runtime, messages: list[InboundMessage], batch: int) -> None:
    """As the adapters queue them: ``batch`` messages per queue message (1: each alone, as a live message)."""
    from intake.queue import QueueSink  # noqa: PLC0415

    QueueSink(runtime.broker, runtime.inflight, batch_size=batch).put_many(messages)


def run_pipeline(url: str, database_url: str, messages: list[InboundMessage], threads: int, data_dir: Path, batch: int) -> float:
    settings = load_settings(environ={}, redis_url=url, redis_namespace=f"bench-pipe-{uuid.uuid4().hex[:8]}",
                             database_url=database_url, data_dir=data_dir, worker_threads=threads, log_level="ERROR")
    from ops.logs import configure_logging

    configure_logging("console", "ERROR")
    with Runtime(settings) as runtime:
        prepare_worker(runtime)
        try:  # the namespace's keys go even if queueing fails part way
            queue_messages(runtime, messages, batch)
            return drain(runtime.broker, threads)
        finally:
            _cleanup(runtime.broker)


def _noop_process(url: str, namespace: str, threads: int, results: "multiprocessing.Queue[tuple[float, float, int]]") -> None:
    """One no-op worker process: drain the queue, report (first, last, count) of what it handled."""
    broker = RedisBroker(url=url, namespace=namespace)
    seen: list[float] = []

    def noop(payload: str) -> None:
        seen.append(time.time())

    dramatiq.actor(noop, broker=broker, queue_name=QUEUE, actor_name="noop")
    worker = dramatiq.Worker(broker, worker_threads=threads, queues={QUEUE}, worker_timeout=WORKER_TIMEOUT_MS)
    worker.start()
    broker.join(QUEUE, interval=20)
    worker.join()
    worker.stop()
    close_broker(broker)
    results.put((min(seen, default=0.0), max(seen, default=0.0), len(seen)))


def run_noop_processes(url: str, payloads: list[str], processes: int, threads: int) -> float:
    """The no-op actor drained by ``processes`` processes: messages per second over the drain."""
    namespace = f"bench-noop-{uuid.uuid4().hex[:8]}"
    broker = RedisBroker(url=url, namespace=namespace)
    actor = dramatiq.actor(lambda payload: None, broker=broker, queue_name=QUEUE, actor_name="noop")
    for payload in payloads:
        actor.send(payload)
    context = multiprocessing.get_context("fork")
    results: multiprocessing.Queue[tuple[float, float, int]] = context.Queue()
    workers = [context.Process(target=_noop_process, args=(url, namespace, threads, results)) for _ in range(processes)]
    try:
        for process in workers:
            process.start()
        reports = [results.get(timeout=600) for _ in workers]
        for process in workers:
            process.join()
    finally:
        _cleanup(broker)
    handled = [r for r in reports if r[2]]
    return sum(r[2] for r in handled) / (max(r[1] for r in handled) - min(r[0] for r in handled))


def run_pipeline_processes(url: str, database_url: str, messages: list[InboundMessage], processes: int, threads: int,
                           data_dir: Path, model_dir: Path, batch: int) -> float:
    """``helpdesk worker --processes P --until-idle`` draining the queued messages: messages per second over the drain."""
    from sqlalchemy import func, select  # noqa: PLC0415

    from storage.models import MESSAGE  # noqa: PLC0415

    namespace = f"bench-pipe-{uuid.uuid4().hex[:8]}"
    settings = load_settings(environ={}, redis_url=url, redis_namespace=namespace, database_url=database_url, data_dir=data_dir,
                             model_dir=model_dir, log_level="ERROR")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    env.update(HELPDESK_REDIS_URL=url, HELPDESK_REDIS_NAMESPACE=namespace, HELPDESK_DATABASE_URL=database_url,
               HELPDESK_DATA_DIR=str(data_dir), HELPDESK_MODEL_DIR=str(model_dir), HELPDESK_LOG_LEVEL="ERROR")
    with Runtime(settings) as runtime:
        runtime.engine  # noqa: B018 - migrated before the clock
        queue_messages(runtime, messages, batch)
        try:
            subprocess.run([sys.executable, "-m", "ops", "worker", "--processes", str(processes), "--threads", str(threads),
                            "--until-idle"], env=env, check=True, cwd=Path(__file__).resolve().parents[1])
            with runtime.engine.connect() as connection:
                first, last = connection.execute(select(func.min(MESSAGE.c.stored_at), func.max(MESSAGE.c.stored_at))).one()
        finally:
            _cleanup(runtime.broker)
    return len(messages) / (last - first).total_seconds()


def _schema_of_its_own(database_url: str) -> tuple[str, Callable[[], None]]:
    """On PostgreSQL, a fresh schema for one run (and how to drop it); a SQLite URL is returned as it is."""
    if not database_url.startswith("postgresql"):
        return database_url, lambda: None
    from sqlalchemy import text  # noqa: PLC0415

    from storage.db import create_db_engine  # noqa: PLC0415

    name = f"bench_{uuid.uuid4().hex[:10]}"
    engine = create_db_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{name}"'))

    def drop() -> None:
        with engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        engine.dispose()

    separator = "&" if "?" in database_url else "?"
    return f"{database_url}{separator}options=-csearch_path%3D{name}", drop


def scaling(args: argparse.Namespace, console: Console) -> None:
    from config.desk import load_desk  # noqa: PLC0415
    from workers.intake.training import ModelStore, load_or_train  # noqa: PLC0415

    counts = [int(p) for p in args.processes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        url = args.redis_url or _default_redis(Path(tmp))
        model_dir = Path(tmp) / "models"
        load_or_train(load_desk(load_settings(environ={})), ModelStore(model_dir))  # once, not in every worker process
        messages = sample_messages(args.messages)
        payloads = [m.to_json() for m in messages]
        for processes in counts:
            database_url, drop = _schema_of_its_own(args.database_url or f"sqlite:///{Path(tmp) / f'bench-{processes}.db'}")
            try:
                noop = run_noop_processes(url, payloads, processes, args.threads)
                pipe = run_pipeline_processes(url, database_url, messages, processes, args.threads, Path(tmp) / f"data-{processes}",
                                              model_dir, args.batch)
            finally:
                drop()
            rows.append((processes, noop, pipe))
            console.print(f"{processes} process(es): no-op {noop:.0f} msg/s, pipeline {pipe:.0f} msg/s")
    kind = (args.database_url or "sqlite").split(":")[0]
    table = Table(title=f"{args.messages} messages, {args.threads} threads per process, batches of {args.batch}, {kind}",
                  title_justify="left")
    for column in ("processes", "no-op msg/s", "pipeline msg/s", "ratio", "pipeline ÷ 1 process"):
        table.add_column(column, justify="right")
    base = rows[0][2]
    for processes, noop, pipe in rows:
        table.add_row(str(processes), f"{noop:.0f}", f"{pipe:.0f}", f"{pipe / noop:.2f}", f"{pipe / base:.2f}×")
    console.print(table)


def _cleanup(broker: RedisBroker) -> None:
    client: redis.Redis = broker.client
    keys = list(client.scan_iter(match=f"{broker.namespace}:*", count=1000))
    if keys:
        client.delete(*keys)
    close_broker(broker)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--redis-url", default=None, help="default: 127.0.0.1:6379 if reachable, else embedded")
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp folder")
    parser.add_argument("--processes", default=None, help="comma-separated process counts, e.g. 1,2,4: run as deployed")
    parser.add_argument("--runs", type=int, default=1, help="no-op and pipeline runs, alternating; the ratio is their median")
    parser.add_argument("--batch", type=int, default=BATCH_MAX_MESSAGES, help="messages per queue message, as adapters batch them")
    args = parser.parse_args()
    console = Console()
    if args.processes:
        scaling(args, console)
        return
    runs: list[tuple[float, float]] = []  # (no-op seconds, pipeline seconds) of each run
    with tempfile.TemporaryDirectory() as tmp:
        url = args.redis_url or _default_redis(Path(tmp))
        messages = sample_messages(args.messages)
        payloads = [m.to_json() for m in messages]
        for run in range(max(1, args.runs)):  # alternating, so that the machine's changes of speed fall on both alike
            noop_s = run_noop(url, payloads, args.threads)
            database_url, drop = _schema_of_its_own(args.database_url or f"sqlite:///{Path(tmp) / f'bench-{run}.db'}")
            try:
                pipe_s = run_pipeline(url, database_url, messages, args.threads, Path(tmp) / f"data-{run}", args.batch)
            finally:
                drop()
            runs.append((noop_s, pipe_s))
        single_s = None
        if args.batch > 1:
            single_db, drop = _schema_of_its_own(args.database_url or f"sqlite:///{Path(tmp) / 'bench-single.db'}")
            try:
                single_s = run_pipeline(url, single_db, messages, args.threads, Path(tmp) / "data-single", 1)
            finally:
                drop()
    n = args.messages
    kind = (args.database_url or "sqlite").split(":")[0]
    table = Table(title=f"{n} messages, {args.threads} worker threads, one process, {kind}", title_justify="left")
    for column in ("run", "seconds", "messages/s", "÷ no-op"):
        table.add_column(column, justify="right" if column != "run" else "left")
    for number, (noop_s, pipe_s) in enumerate(runs, 1):
        label = f" (run {number})" if len(runs) > 1 else ""
        table.add_row(f"bare no-op dramatiq actor (one queue message each){label}", f"{noop_s:.2f}", f"{n / noop_s:.0f}", "1.00")
        table.add_row(f"helpdesk pipeline, batches of {args.batch}{label}", f"{pipe_s:.2f}", f"{n / pipe_s:.0f}", f"{noop_s / pipe_s:.2f}")
    if single_s is not None:
        noop_s = statistics.median(noop for noop, _ in runs)
        table.add_row("helpdesk pipeline, one queue message each", f"{single_s:.2f}", f"{n / single_s:.0f}", f"{noop_s / single_s:.2f}")
    console.print(table)
    ratios = sorted(noop_s / pipe_s for noop_s, pipe_s in runs)
    ratio = statistics.median(ratios)
    spread = f" (median of {len(ratios)} alternating runs: {', '.join(f'{r:.2f}' for r in ratios)})" if len(ratios) > 1 else ""
    console.print(f"ratio pipeline / no-op: [bold]{ratio:.2f}[/bold]{spread} (target ≥ 0.6)")


def _default_redis(tmp: Path) -> str:
    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1).ping()
        return "redis://127.0.0.1:6379/0"
    except redis.RedisError:
        return start_embedded_redis(tmp)


if __name__ == "__main__":
    main()
