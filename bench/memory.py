"""Benchmark: the worker's resident memory while it drains N queued messages (target < 200 MB for 1,000).

    python bench/memory.py [--messages 1000] [--runs 1] [--redis-url URL]

A data folder of its own, prepared as ``bench/startup.py`` prepares one (SQLite,
the embedded Redis unless --redis-url is given, migrated, the documentation
index of ``config/docs``, a first trained model): a desk that has been running.
N messages of ``bench/pipeline.py``'s mix (70% new enquiries, 10% replies, 20%
exact repeats) are queued, then ``helpdesk worker --until-idle`` (default
threads) drains them while the resident set of its process tree — the worker
and any process it starts — is read from /proc every 20 ms. The peak is the
figure; the last reading, as the drained worker stops, is shown beside it
(Linux only; shared pages count in every process that maps them).

Baseline, same run, same Redis: a bare dramatiq worker process with one no-op
actor, default middleware and the same threads, draining N messages of the same
size under a namespace of its own — the engine and the interpreter alone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline import sample_messages  # noqa: E402 - bench/pipeline.py: the same mix of messages
from startup import Desk  # noqa: E402 - bench/startup.py: the same prepared data folder
from workers.ops.runner import WORKER_TIMEOUT_MS  # noqa: E402

TARGET_MB = 200
SAMPLE_SECONDS = 0.02
# A bare dramatiq worker, its consumers looking as often as `helpdesk worker`'s (workers/ops/runner.WORKER_TIMEOUT_MS).
NOOP_WORKER = f"""
import sys, dramatiq
from dramatiq.brokers.redis import RedisBroker
broker = RedisBroker(url=sys.argv[1], namespace=sys.argv[2])
dramatiq.actor(lambda payload: None, broker=broker, queue_name="intake", actor_name="noop")
worker = dramatiq.Worker(broker, worker_threads=int(sys.argv[3]), queues={{"intake"}}, worker_timeout={WORKER_TIMEOUT_MS})
worker.start()
broker.join("intake", interval=20)
worker.join()
worker.stop()
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=1, help="drains of each kind (the median peak is shown)")
    parser.add_argument("--redis-url", help="an external Redis (default: the embedded one, in the temporary data folder)")
    args = parser.parse_args()
    messages = sample_messages(args.messages)
    with tempfile.TemporaryDirectory(prefix="hd-memory-") as folder:
        desk = Desk(Path(folder), args.redis_url)
        desk.prepare()
        with Queues(desk) as queues:
            baselines = [queues.noop_peak(messages) for _ in range(max(1, args.runs))]
            workers = [queues.worker_peak(messages) for _ in range(max(1, args.runs))]
    report(args.messages, median_of(baselines), median_of(workers))


class Queues:
    """The desk's Redis and database, as the bench process sees them: it queues, the drained processes are measured."""

    def __init__(self, desk: Desk) -> None:
        from config.settings import load_settings  # noqa: PLC0415
        from ops.runtime import Runtime  # noqa: PLC0415

        self.desk = desk
        environ = {k: v for k, v in desk.env.items() if k.startswith("HELPDESK_")}
        self.runtime = Runtime(load_settings(environ=environ))

    def __enter__(self) -> "Queues":
        return self

    def __exit__(self, *exc: object) -> None:
        self.runtime.close()

    def worker_peak(self, messages: list) -> tuple[float, float]:
        """MB: the peak and the last resident set of `helpdesk worker --until-idle` (and its children) draining ``messages``."""
        for message in messages:
            self.runtime.sink.put(message)
        worker = subprocess.Popen([sys.executable, "-m", "ops", "worker", "--until-idle"], env=self.desk.env, cwd=self.desk.folder,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        return peak_of(worker, "helpdesk worker")

    def noop_peak(self, messages: list) -> tuple[float, float]:
        """MB: the peak and the last resident set of a bare dramatiq worker with a no-op actor draining as many messages of the same size."""
        import dramatiq  # noqa: PLC0415
        from dramatiq.brokers.redis import RedisBroker  # noqa: PLC0415

        namespace = f"bench-noop-{uuid.uuid4().hex[:8]}"
        broker = RedisBroker(client=self.runtime.redis, namespace=namespace)
        actor = dramatiq.actor(lambda payload: None, broker=broker, queue_name="intake", actor_name="noop")
        for message in messages:
            actor.send(message.to_json())
        threads = str(self.runtime.settings.worker_threads)
        worker = subprocess.Popen([sys.executable, "-c", NOOP_WORKER, self.runtime.redis_url, namespace, threads], env=self.desk.env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            return peak_of(worker, "the no-op worker")
        finally:
            keys = list(self.runtime.redis.scan_iter(match=f"{namespace}:*", count=1000))
            if keys:
                self.runtime.redis.delete(*keys)


def peak_of(process: subprocess.Popen[str], name: str) -> tuple[float, float]:
    """MB: the largest and the last summed resident set of ``process`` and its descendants, sampled until it exits."""
    peak = last = 0
    while process.poll() is None:
        reading = sum(resident_kb(pid) for pid in [process.pid, *descendants(process.pid)])
        peak, last = max(peak, reading), reading or last  # 0: it exited between poll() and the reading
        time.sleep(SAMPLE_SECONDS)
    if process.returncode:
        sys.exit(f"{name} failed ({process.returncode}):\n{process.stderr.read()[-2000:] if process.stderr else ''}")
    return peak / 1024, last / 1024


def median_of(readings: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(r[0] for r in readings), statistics.median(r[1] for r in readings)


def descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                # the field after the parenthesised command (which may hold spaces) are state, then the parent's pid
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def resident_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass  # gone between the listing and the reading
    return 0


def report(n: int, baseline: tuple[float, float], worker: tuple[float, float]) -> None:
    print(f"resident memory draining {n:,} messages ({os.cpu_count()} cores)")
    print(f"{'':36} {'peak':>8} {'at the end':>11} {'target':>10}")
    print(f"{'bare dramatiq worker, no-op actor':36} {baseline[0]:5.0f} MB {baseline[1]:8.0f} MB {'baseline':>10}")
    verdict = "ok" if worker[0] < TARGET_MB else "over"
    print(f"{'helpdesk worker (process tree)':36} {worker[0]:5.0f} MB {worker[1]:8.0f} MB {'< ' + str(TARGET_MB) + ' MB':>10} "
          f"{verdict}   peak {worker[0] / baseline[0]:.1f}× the baseline, {worker[0] - baseline[0]:+.0f} MB")


if __name__ == "__main__":
    main()
