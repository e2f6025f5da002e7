"""Benchmark: N messages through the real pipeline vs a bare no-op dramatiq actor, same Redis, same worker settings.

    python bench/pipeline.py [--messages 3000] [--threads 8] [--database-url URL] [--redis-url URL]

Both runs enqueue their N messages first (not timed), then time one worker
process draining the queue. The no-op run uses a plain RedisBroker with
dramatiq's default middleware; the pipeline run uses our broker and
middleware, classifies, routes and stores every message (SQLite in a temp
folder unless --database-url is given). The mix is 70% new enquiries, 10%
replies and 20% exact repeats. Prints both rates and their ratio (target ≥ 0.6).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.broker import close_broker, start_embedded_redis  # noqa: E402
from config.settings import load_settings  # noqa: E402
from intake.message import InboundMessage  # noqa: E402
from intake.mime import parse_email  # noqa: E402
from ops.runtime import Runtime, prepare_worker  # noqa: E402
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
    worker = dramatiq.Worker(broker, worker_threads=threads, queues={QUEUE})
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
    for payload in payloads:
        actor.send(payload)
    try:
        return drain(broker, threads)
    finally:
        _cleanup(broker)


def run_pipeline(url: str, database_url: str, messages: list[InboundMessage], threads: int, data_dir: Path) -> float:
    settings = load_settings(environ={}, redis_url=url, redis_namespace=f"bench-pipe-{uuid.uuid4().hex[:8]}",
                             database_url=database_url, data_dir=data_dir, worker_threads=threads, log_level="ERROR")
    from ops.logs import configure_logging

    configure_logging("console", "ERROR")
    with Runtime(settings) as runtime:
        prepare_worker(runtime)
        for message in messages:
            runtime.sink.put(message)
        try:
            return drain(runtime.broker, threads)
        finally:
            _cleanup(runtime.broker)


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
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.redis_url or _default_redis(Path(tmp))
        database_url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        messages = sample_messages(args.messages)
        payloads = [m.to_json() for m in messages]
        noop_s = run_noop(url, payloads, args.threads)
        pipe_s = run_pipeline(url, database_url, messages, args.threads, Path(tmp) / "data")
    n = args.messages
    table = Table(title=f"{n} messages, {args.threads} worker threads, one process, {database_url.split(':')[0]}", title_justify="left")
    for column in ("run", "seconds", "messages/s"):
        table.add_column(column, justify="right" if column != "run" else "left")
    table.add_row("bare no-op dramatiq actor", f"{noop_s:.2f}", f"{n / noop_s:.0f}")
    table.add_row("helpdesk pipeline", f"{pipe_s:.2f}", f"{n / pipe_s:.0f}")
    console.print(table)
    ratio = (n / pipe_s) / (n / noop_s)
    console.print(f"ratio pipeline / no-op: [bold]{ratio:.2f}[/bold] (target ≥ 0.6)")


def _default_redis(tmp: Path) -> str:
    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1).ping()
        return "redis://127.0.0.1:6379/0"
    except redis.RedisError:
        return start_embedded_redis(tmp)


if __name__ == "__main__":
    main()
