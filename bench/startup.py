"""Benchmark: how fast the command line answers and how fast a starting worker stores its first message.

    python bench/startup.py [--runs 5] [--redis-url URL] [--no-bytecode-cache]

Everything runs as the user runs it — ``python -m ops …`` in a fresh process —
on a data folder of its own (SQLite, and the embedded Redis unless --redis-url
is given, then under a key namespace of its own). Before timing, the folder is
migrated, the documentation index of ``config/docs`` is built and one message
is processed, so the desk's first model exists: the figures are warm starts, as
on a desk that has been running (the demo's, say).

Warm includes the bytecode: the commands keep compiled modules in a cache of
their own in the temporary folder (``PYTHONPYCACHEPREFIX``), filled while the
folder is prepared, as an installed desk has them (pip compiles on install).
``--no-bytecode-cache`` runs them in the caller's environment instead: with
``PYTHONDONTWRITEBYTECODE`` set there (the development containers set it),
every command compiles the project's modules again — 0.07 s of a short
command, more of the worker's start.

(a) wall time of ``helpdesk --help``, ``tickets --json`` and ``status --json``
    (median of --runs), beside ``python -c pass`` measured in the same run;
(b) worker start → first message stored: one message is queued (``helpdesk
    import``, not timed), then ``helpdesk worker`` is started and the clock
    stops when the ticket's row is in the database (median of --runs).

Prints each figure beside its target. Timings vary with the machine's load:
compare figures of one run, not across runs.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "ops" / "samples" / "enquiries" / "01-framework-call-offs.eml"
TARGETS = {"helpdesk --help": 0.5, "helpdesk tickets --json": 0.5, "helpdesk status --json": 0.5,
           "worker start → first message stored": 1.5}
STORE_TIMEOUT_SECONDS = 120


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each figure (the median is shown)")
    parser.add_argument("--redis-url", help="an external Redis (default: the embedded one, in the temporary data folder)")
    parser.add_argument("--no-bytecode-cache", action="store_true", help="no bytecode cache of its own (see above)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hd-startup-") as folder:
        desk = Desk(Path(folder), args.redis_url, bytecode_cache=not args.no_bytecode_cache)
        desk.prepare()
        wall([sys.executable, "-c", "pass"], desk.env)  # each command once untimed first: its bytecode and files are cached
        figures = {"python -c pass": median(args.runs, lambda: wall([sys.executable, "-c", "pass"], desk.env))}
        for label, argv in (("helpdesk --help", ["--help"]), ("helpdesk tickets --json", ["tickets", "--json"]),
                            ("helpdesk status --json", ["status", "--json"])):
            desk.timed(argv)
            figures[label] = median(args.runs, lambda argv=argv: desk.timed(argv))
        figures["worker start → first message stored"] = median(args.runs, desk.first_message_stored)
    report(figures)


class Desk:
    """A data folder of its own, and the commands run on it."""

    def __init__(self, folder: Path, redis_url: str | None, *, bytecode_cache: bool = True) -> None:
        self.folder = folder
        self.database = folder / "data" / "helpdesk.db"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
        self.env |= {"HELPDESK_DATA_DIR": str(folder / "data"), "HELPDESK_LOG_LEVEL": "WARNING", "COLUMNS": "100"}
        if bytecode_cache:
            self.env.pop("PYTHONDONTWRITEBYTECODE", None)
            self.env["PYTHONPYCACHEPREFIX"] = str(folder / "bytecode")
        if redis_url:
            self.env |= {"HELPDESK_REDIS_URL": redis_url, "HELPDESK_REDIS_NAMESPACE": f"bench-{uuid.uuid4().hex[:8]}"}
        self.sent = 0

    def run(self, argv: list[str], **options: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ops", *argv], env=self.env, cwd=self.folder, capture_output=True, text=True,
                              timeout=600, **options)  # type: ignore[call-overload]

    def timed(self, argv: list[str]) -> float:
        started = time.perf_counter()
        done = self.run(argv)
        elapsed = time.perf_counter() - started
        if done.returncode not in (0, 1):  # status exits 1 when unhealthy: still an answer
            sys.exit(f"helpdesk {' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
        return elapsed

    def prepare(self) -> None:
        """Migrate, index the docs, process one message with an until-idle worker (the first model is trained and saved)."""
        for argv in (["db", "upgrade"], ["docs", "index", str(ROOT / "config" / "docs")], ["import", str(self.queue_one())],
                     ["worker", "--until-idle"]):
            done = self.run(argv)
            if done.returncode:
                sys.exit(f"helpdesk {' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-2000:]}")

    def queue_one(self) -> Path:
        """A copy of a sample enquiry with a Message-ID of its own (so it opens a ticket, not a duplicate)."""
        self.sent += 1
        text = SAMPLE.read_text(encoding="utf-8").replace("Message-ID: <", f"Message-ID: <bench-{uuid.uuid4().hex}-", 1)
        path = self.folder / f"mail-{self.sent}.eml"
        path.write_text(text.replace("Subject: ", f"Subject: [{self.sent}] ", 1), encoding="utf-8")
        return path

    def tickets(self) -> int:
        try:
            with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=5) as connection:
                return connection.execute("SELECT count(*) FROM ticket").fetchone()[0]
        except sqlite3.OperationalError:  # locked or mid-migration: not yet
            return -1

    def first_message_stored(self) -> float:
        """Seconds from starting `helpdesk worker` to the queued message's ticket row."""
        done = self.run(["import", str(self.queue_one())])
        if done.returncode:
            sys.exit(f"helpdesk import failed:\n{done.stderr[-2000:]}")
        before = self.tickets()
        started = time.perf_counter()
        worker = subprocess.Popen([sys.executable, "-m", "ops", "worker"], env=self.env, cwd=self.folder,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            while self.tickets() <= before:
                if worker.poll() is not None:
                    sys.exit(f"the worker exited ({worker.returncode}):\n{worker.stderr.read()[-2000:] if worker.stderr else ''}")
                if time.perf_counter() - started > STORE_TIMEOUT_SECONDS:
                    sys.exit("no ticket stored within two minutes")
                time.sleep(0.005)
            return time.perf_counter() - started
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.communicate()


def wall(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, env=env)
    return time.perf_counter() - started


def median(runs: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(max(1, runs)))


def report(figures: dict[str, float]) -> None:
    baseline = figures["python -c pass"]
    print(f"{'':40} {'wall':>8} {'target':>8} {'':6} {'minus baseline':>15}")
    for label, seconds in figures.items():
        target = TARGETS.get(label)
        verdict = "" if target is None else ("ok" if seconds < target else "over")
        target_text = f"< {target:g} s" if target is not None else "baseline"
        extra = "" if target is None else f"{seconds - baseline:13.2f} s"
        print(f"{label:40} {seconds:6.2f} s {target_text:>8} {verdict:6} {extra:>15}")


if __name__ == "__main__":
    main()
