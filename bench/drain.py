"""Benchmark: ``helpdesk worker --until-idle`` on 1,000 pre-queued mails, the whole process timed (target ≥ 300 msg/s).

    python bench/drain.py [--runs 3] [--threads N] [--processes N] [--redis-url URL]

A data folder of its own, prepared as ``bench/startup.py`` prepares one (SQLite,
the embedded Redis unless --redis-url is given, migrated, the documentation
index of ``config/docs``, a first trained model): a desk that has been running.
Each run writes the end-to-end test's mailbox — 700 enquiries, 100 replies to
earlier ones, 200 byte-exact repeats, as ``.eml`` files with Message-IDs of the
run's own — queues it with ``helpdesk import`` (not timed), then times a fresh
``helpdesk worker --until-idle`` from its start until it exits, while the
database is read every 20 ms: when the first ticket was stored, when the last
of the 800 messages was, and so how the time splits between start-up, intake
and the side effects after it (assignment, Slack card, acknowledgement).

Baseline, same run, same Redis: a bare dramatiq worker process with one no-op
actor, default middleware and the worker's threads, draining 1,000 messages of
the same sizes, its process start included, timed the same way.

Prints the median of --runs beside the target. Timings vary with the machine's
load: compare figures of one run, not across runs.
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from memory import NOOP_WORKER  # noqa: E402 - bench/memory.py: the same bare worker
from startup import Desk  # noqa: E402 - bench/startup.py: the same prepared data folder

TARGET = 300.0  # messages per second, issue #18
ORIGINALS, REPLIES, REPEATS = 700, 100, 200
POLL_SECONDS = 0.02


@dataclass
class Drain:
    seconds: float  # start of the process → its exit
    first_stored: float  # start → the first ticket row
    all_stored: float  # start → every distinct message stored
    cpu: float = 0.0  # CPU seconds (user + system) of the worker process and any children it reaped

    @property
    def rate(self) -> float:
        return (ORIGINALS + REPLIES + REPEATS) / self.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, help="worker threads of both workers (default: the desk's setting, 8)")
    parser.add_argument("--processes", type=int, default=1, help="helpdesk worker --processes N (default 1; the bare worker stays one process)")
    parser.add_argument("--redis-url", help="an external Redis (default: the embedded one, in the temporary data folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hd-drain-") as folder:
        desk = Desk(Path(folder), args.redis_url)
        if args.threads:
            desk.env["HELPDESK_WORKER_THREADS"] = str(args.threads)
        desk.prepare()
        baselines, drains = [], []
        for run in range(max(1, args.runs)):
            mails = write_mailbox(Path(folder) / f"mail-{run}", run)
            baselines.append(noop_drain(desk, mails))
            drains.append(worker_drain(desk, Path(folder) / f"mail-{run}", args.processes))
            print(f"run {run + 1}: no-op {baselines[-1]:.2f} s, helpdesk worker {drains[-1].seconds:.2f} s ({drains[-1].cpu:.2f} s of CPU)",
                  file=sys.stderr)
    report(statistics.median(baselines), drains)


def write_mailbox(folder: Path, run: int) -> list[bytes]:
    """The end-to-end test's mailbox, with Message-IDs of this run's own (replies and repeats keep their links)."""
    from tests.test_end_to_end import build_mailbox  # noqa: PLC0415 - the tests' mail, written once for every benchmark

    build_mailbox(folder, ORIGINALS, REPLIES, REPEATS)
    mails = []
    for path in sorted(folder.glob("*.eml")):
        raw = path.read_bytes().replace(b"@e2e>", f"@e2e-{run}>".encode())
        path.write_bytes(raw)
        mails.append(raw)
    return mails


def worker_drain(desk: Desk, mail: Path, processes: int = 1) -> Drain:
    done = desk.run(["import", str(mail)])
    if done.returncode:
        sys.exit(f"helpdesk import failed:\n{done.stderr[-2000:]}")
    before = stored_messages(desk)
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    worker = subprocess.Popen([sys.executable, "-m", "ops", "worker", "--until-idle", "--processes", str(processes)], env=desk.env, cwd=desk.folder,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    first = every = None
    try:
        while worker.poll() is None:
            count = stored_messages(desk) - before
            now = time.perf_counter() - started
            if count > 0 and first is None:
                first = now
            if count >= ORIGINALS + REPLIES and every is None:
                every = now
            time.sleep(POLL_SECONDS)
    finally:
        if worker.poll() is None:
            worker.kill()
        _, errors = worker.communicate()
    seconds = time.perf_counter() - started
    if worker.returncode:
        sys.exit(f"helpdesk worker failed ({worker.returncode}):\n{errors[-2000:]}")
    stored = stored_messages(desk) - before
    if stored != ORIGINALS + REPLIES:
        sys.exit(f"the worker stored {stored} messages, not {ORIGINALS + REPLIES}")
    done_with = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = done_with.ru_utime + done_with.ru_stime - used.ru_utime - used.ru_stime
    return Drain(seconds, first if first is not None else seconds, every if every is not None else seconds, cpu)


def stored_messages(desk: Desk) -> int:
    try:
        with sqlite3.connect(f"file:{desk.database}?mode=ro", uri=True, timeout=5) as connection:
            return connection.execute("SELECT count(*) FROM message WHERE kind != 'staff'").fetchone()[0]
    except sqlite3.OperationalError:  # locked or mid-migration: not yet
        return 0


def noop_drain(desk: Desk, mails: list[bytes]) -> float:
    """Seconds: a bare dramatiq worker process started on ``len(mails)`` queued messages of the same sizes, until it exits."""
    import dramatiq  # noqa: PLC0415
    import redis  # noqa: PLC0415
    from dramatiq.brokers.redis import RedisBroker  # noqa: PLC0415

    from config.settings import load_settings  # noqa: PLC0415
    from ops.runtime import Runtime  # noqa: PLC0415

    environ = {k: v for k, v in desk.env.items() if k.startswith("HELPDESK_")}
    runtime = Runtime(load_settings(environ=environ))
    try:
        namespace = f"bench-noop-{uuid.uuid4().hex[:8]}"
        client: redis.Redis = runtime.redis
        broker = RedisBroker(client=client, namespace=namespace)
        actor = dramatiq.actor(lambda payload: None, broker=broker, queue_name="intake", actor_name="noop")
        for raw in mails:
            actor.send(raw.decode("utf-8", "replace"))
        threads = str(runtime.settings.worker_threads)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", NOOP_WORKER, runtime.redis_url, namespace, threads], env=desk.env,
                       check=True, capture_output=True, timeout=600)
        seconds = time.perf_counter() - started
        keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
        if keys:
            client.delete(*keys)
        return seconds
    finally:
        runtime.close()


def report(baseline: float, drains: list[Drain]) -> None:
    n = ORIGINALS + REPLIES + REPEATS

    def median(values: list[float]) -> float:
        return statistics.median(values)

    seconds = median([d.seconds for d in drains])
    rate = n / seconds
    print(f"helpdesk worker --until-idle on {n:,} queued mails ({ORIGINALS} new, {REPLIES} replies, {REPEATS} repeats), "
          f"median of {len(drains)}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(f"{'':38} {'seconds':>8} {'msg/s':>8} {'target':>8}")
    print(f"{'bare dramatiq worker, no-op actor':38} {baseline:8.2f} {n / baseline:8.0f} {'baseline':>8}")
    verdict = "ok" if rate >= TARGET else "under"
    print(f"{'helpdesk worker --until-idle':38} {seconds:8.2f} {rate:8.0f} {'≥ ' + f'{TARGET:.0f}':>8} {verdict}   "
          f"{rate / (n / baseline):.2f}× the baseline's rate")
    first, every = median([d.first_stored for d in drains]), median([d.all_stored for d in drains])
    print(f"  start → first ticket stored {first:.2f} s; → all {ORIGINALS + REPLIES} messages stored {every:.2f} s "
          f"(intake {every - first:.2f} s); → exit {seconds:.2f} s (effects and stopping {seconds - every:.2f} s)")
    print(f"  CPU of the worker process (and any children it reaped): {median([d.cpu for d in drains]):.2f} s")


if __name__ == "__main__":
    main()
