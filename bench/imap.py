"""Benchmark: IMAP backfill throughput and IDLE latency, against a private Dovecot, to stored tickets.

    python bench/imap.py [--messages 10000] [--latency 200] [--database-url URL]

1. Backfill: a mailbox of N messages (written straight into Dovecot's Maildir)
   is read by the adapter (one connection, batches of 100) while a worker
   process (8 threads) stores them; reports messages/s from the adapter's start
   until the last ticket is stored. Target ≥ 300 msg/s.
2. IDLE latency: with the adapter in IDLE and the worker running, M messages
   are APPENDed one at a time; for each, the time from the APPEND's completion
   to the ticket being stored. Reports p50 / p95. Target p95 < 1 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import redis
from imapclient import IMAPClient
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.desk import load_desk  # noqa: E402
from config.settings import load_settings  # noqa: E402
from intake.imap import FolderWatcher, ImapAccount, WatchOptions  # noqa: E402
from intake.state import AdapterHealth, RedisCheckpointStore  # noqa: E402
from ops.logs import configure_logging  # noqa: E402
from ops.runtime import Runtime  # noqa: E402
from storage.intake_store import MESSAGE  # noqa: E402
from tests.dovecot import Dovecot  # noqa: E402
from tests.factories import make_email  # noqa: E402
from tests.test_end_to_end import SENDERS, SUBJECTS  # noqa: E402
from workers.intake.training import ModelStore, load_or_train  # noqa: E402

USER, PASSWORD = "bench", "bench-password"


def write_maildir(dovecot: Dovecot, n: int) -> None:
    """N distinct enquiries straight into the user's Maildir/new (Dovecot assigns UIDs when it first looks)."""
    new = dovecot.root / "home" / USER / "Maildir" / "new"
    for sub in ("new", "cur", "tmp"):
        (new.parent / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        body = (f"Hello, enquiry {i}: our data review shows validation errors for tender/value and buyer.id. "
                f"How should we map the fields of our system? Regards, Ana")
        raw = make_email(sender=SENDERS[i % 6], subject=f"{SUBJECTS[i % 4]} #{i}", body=body, message_id=f"<b{i}@bench>")
        (new / f"{1790000000 + i}.{i}_bench.host").write_bytes(raw)
    for path in (new.parent.parent, *new.parent.parent.rglob("*")):
        shutil.chown(path, 65534, 65534)


def stored(engine) -> int:  # noqa: ANN001
    with engine.connect() as c:
        return c.execute(select(func.count()).select_from(MESSAGE)).scalar_one()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--latency", type=int, default=200)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    configure_logging("console", "ERROR")
    console = Console()
    root = Path(tempfile.mkdtemp(prefix="hdbench-dovecot-"))
    root.chmod(0o755)
    work = Path(tempfile.mkdtemp(prefix="hdbench-"))
    dovecot = Dovecot(root, with_ssl=False)
    dovecot.configure()
    dovecot.add_user(USER, PASSWORD)
    namespace = f"bench-imap-{uuid.uuid4().hex[:8]}"
    database_url = args.database_url or f"sqlite:///{work / 'bench.db'}"
    settings = load_settings(environ={}, data_dir=work / "data", redis_url=args.redis_url, redis_namespace=namespace,
                             database_url=database_url, log_level="ERROR")
    load_or_train(load_desk(settings), ModelStore(settings.resolved_model_dir))  # the worker finds a trained model
    worker = None
    try:
        write_maildir(dovecot, args.messages)
        dovecot.start()
        with Runtime(settings) as runtime:
            runtime.engine  # noqa: B018 - migrate before timing
            env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
            env.update({"HELPDESK_DATA_DIR": str(settings.data_dir), "HELPDESK_REDIS_URL": args.redis_url,
                        "HELPDESK_REDIS_NAMESPACE": namespace, "HELPDESK_DATABASE_URL": database_url, "HELPDESK_LOG_LEVEL": "ERROR"})
            worker = subprocess.Popen([sys.executable, "-m", "ops", "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(3)  # the worker loads its model before the clock starts
            account = ImapAccount("127.0.0.1", dovecot.port, USER, PASSWORD, False, None, ("INBOX",), None, 30.0)
            stop = threading.Event()
            client, ns = runtime.broker.client, namespace
            watcher = FolderWatcher(account, "INBOX", runtime.ingestor, RedisCheckpointStore(client, ns), AdapterHealth(client, ns),
                                    WatchOptions(batch_size=100, poll_seconds=300), stop)
            started = time.perf_counter()
            thread = threading.Thread(target=watcher.run, daemon=True)
            thread.start()
            while stored(runtime.engine) < args.messages:
                time.sleep(0.2)
            backfill_s = time.perf_counter() - started
            latencies = measure_latency(dovecot, runtime.engine, args.latency)
            stop.set()
            thread.join(timeout=30)
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        dovecot.stop()
        keys = list(redis.Redis.from_url(args.redis_url).scan_iter(match=f"{namespace}:*", count=1000))
        if keys:
            redis.Redis.from_url(args.redis_url).delete(*keys)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    report(console, args, backfill_s, latencies, database_url)


def measure_latency(dovecot: Dovecot, engine, n: int) -> list[float]:  # noqa: ANN001
    client = IMAPClient("127.0.0.1", port=dovecot.port, ssl=False, timeout=10)
    client.login(USER, PASSWORD)
    latencies = []
    appended_at: dict[str, float] = {}
    base = stored(engine)
    for i in range(n):
        client.append("INBOX", make_email(message_id=f"<lat{i}@bench>", subject=f"Latency probe {i}",
                                           body="Where can I download the contracts data?"))
        appended = time.perf_counter()
        appended_at[f"lat{i}@bench"] = time.time()
        while stored(engine) < base + i + 1:
            time.sleep(0.002)
        latencies.append(time.perf_counter() - appended)
    client.logout()
    with engine.connect() as c:
        rows = c.execute(select(MESSAGE.c.external_id, MESSAGE.c.received_at, MESSAGE.c.stored_at).where(MESSAGE.c.external_id.like("lat%"))).all()
    adapter = [r.received_at.timestamp() - appended_at[r.external_id] for r in rows]
    pipeline = [(r.stored_at - r.received_at).total_seconds() for r in rows]
    print(f"APPEND → adapter received: median {statistics.median(adapter) * 1000:.0f} ms; received → stored: median {statistics.median(pipeline) * 1000:.0f} ms")
    return latencies


def report(console: Console, args, backfill_s: float, latencies: list[float], database_url: str) -> None:  # noqa: ANN001
    table = Table(title=f"IMAP intake against Dovecot → tickets in {database_url.split(':')[0]}", title_justify="left")
    for column in ("measure", "value", "target"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    table.add_row(f"backfill of {args.messages:,} messages", f"{args.messages / backfill_s:,.0f} msg/s ({backfill_s:.1f} s)", "≥ 300 msg/s")
    quantiles = statistics.quantiles(latencies, n=100)
    table.add_row(f"IDLE latency, APPEND → stored ticket, p50 ({len(latencies)} messages)", f"{statistics.median(latencies) * 1000:.0f} ms", "")
    table.add_row("IDLE latency, p95", f"{quantiles[94] * 1000:.0f} ms", "< 1,000 ms")
    table.add_row("IDLE latency, max", f"{max(latencies) * 1000:.0f} ms", "")
    console.print(table)


if __name__ == "__main__":
    main()
