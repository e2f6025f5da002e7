"""Fault injection: 1,000 e-mails through the real IMAP adapter and two worker processes while things break.

Each scenario starts from a fresh database, Redis server (AOF, everysec), mailbox and data dir,
feeds the mailbox by IMAP APPEND over about 30 s while the faults land, waits for the pipeline to
settle, and then checks that every appended message is accounted for exactly once, that no ticket
holds a message twice, and that the processes are still running. Figures (times, kills, counts,
peak memory) are printed and written to ``faults-figures.json`` beside the logs of every process,
in ``$HDFAULTS_OUT`` or a new ``/tmp/hdfaults-<time>-*`` folder (not pytest's temp folder: concurrent
pytest runs rotate those away). The scenarios themselves live in ``harness.py``, shared with
``bench/faults.py``.

    .venv/bin/python -m pytest tests/faults -q -s -x
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest

from tests.conftest import service_missing
from tests.faults.harness import PG_BIN, REDIS_SERVER, Figures, Lab, Run, build_mailbox, print_figures, run_scenario

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

FEED_SECONDS = 30.0  # the mailbox fills over this long while the faults land


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """A private PostgreSQL cluster and Dovecot for the scenarios of this module."""
    missing = [what for what, ok in (
        ("root (the private PostgreSQL cluster runs as the postgres OS user, through runuser)", os.geteuid() == 0),
        ("the postgres OS user", subprocess.run(["id", "postgres"], capture_output=True).returncode == 0),
        (f"PostgreSQL 15 binaries in {PG_BIN}", (PG_BIN / "pg_ctl").exists() and (PG_BIN / "initdb").exists()),
        (f"redis-server ({REDIS_SERVER})", Path(REDIS_SERVER).exists()),
        ("dovecot (Debian package dovecot-imapd)", bool(shutil.which("dovecot")) or Path("/usr/sbin/dovecot").exists()),
    ) if not ok]
    if missing:
        service_missing(", ".join(missing))
    lab = Lab()
    try:
        lab.start()
        yield lab
    finally:
        lab.close()


@pytest.fixture(scope="module")
def out_dir() -> Path:
    """Logs and figures of this session, outside pytest's temp folders (which concurrent pytest runs rotate away).

    ``HDFAULTS_OUT`` names it; by default a new /tmp/hdfaults-<time>-<pid> folder.
    """
    if os.environ.get("HDFAULTS_OUT"):
        folder = Path(os.environ["HDFAULTS_OUT"])
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return Path(tempfile.mkdtemp(prefix=f"hdfaults-{time.strftime('%Y%m%dT%H%M%S')}-", dir="/tmp"))


@pytest.fixture(scope="module")
def all_figures(out_dir: Path) -> Iterator[list[Figures]]:
    collected: list[Figures] = []
    yield collected
    if collected:
        path = out_dir / "faults-figures.json"
        path.write_text(json.dumps([asdict(f) for f in collected], indent=2, ensure_ascii=False))
        print(f"\n\nfault-injection figures ({path}):")
        print_figures(collected)


@pytest.fixture(scope="module")
def mailbox():  # noqa: ANN201 - harness.Mailbox
    return build_mailbox(seed=13)


@pytest.fixture
def make_run(lab: Lab, out_dir: Path, model_dir: Path, mailbox, all_figures: list[Figures]):  # noqa: ANN001, ANN201
    """Runs of this test; each one's processes and servers are stopped afterwards, whatever happened."""
    runs: list[Run] = []

    def make(name: str) -> Run:
        # every scenario appends the same 1,000 items; UIDs and times are the run's own
        fresh = type(mailbox)([type(i)(**{**i.__dict__, "uid": None, "appended_at": None}) for i in mailbox.items], mailbox.seed)
        run = Run(lab, name, out_dir / name, model_dir, fresh, feed_seconds=FEED_SECONDS)
        runs.append(run)
        return run

    yield make
    for run in runs:
        try:
            run.close()
        finally:
            all_figures.append(run.figures)
        print(f"\n[{run.name}] figures: {json.dumps(asdict(run.figures) | {'events': len(run.figures.events), 'failures': len(run.figures.failures)}, ensure_ascii=False)}")
        print(f"[{run.name}] logs: {run.folder / 'logs'}")
        if not run.figures.failures:  # keep the logs; the archive and the AOF only matter when something failed
            shutil.rmtree(run.folder / "data", ignore_errors=True)
            shutil.rmtree(run.folder / "redis" / "appendonlydir", ignore_errors=True)


def then_exact(run: Run, failures: list[str]) -> None:
    """Then: settled, every message accounted for exactly once, no ticket holding a message twice, the processes up."""
    if failures:
        listing = "\n".join(f"{n}. {f}" for n, f in enumerate(failures, 1))
        pytest.fail(f"[{run.name}] {len(failures)} check(s) failed:\n{listing}\n\n{run.evidence()}", pytrace=False)


def test_sigkill_workers_and_adapter_at_random_moments(make_run) -> None:  # noqa: ANN001
    # Given the adapter and two workers, and a mailbox filling up over 30 s
    run = make_run("sigkill")
    # When workers and the adapter are killed with SIGKILL at random (seeded) moments and started again
    failures = run_scenario(run, "sigkill")
    # Then nothing is lost or doubled, and every process is running
    then_exact(run, failures)


def test_redis_restarts_with_sigterm_then_sigkill(make_run) -> None:  # noqa: ANN001
    # Given the adapter and two workers, and a mailbox filling up over 30 s
    run = make_run("redis")
    # When Redis stops cleanly (SIGTERM) for 3 s, and later is killed (SIGKILL: up to 1 s of writes lost) for 3 s
    failures = run_scenario(run, "redis")
    # Then nothing is lost or doubled, and the processes came back by themselves (none was restarted)
    then_exact(run, failures)


def test_postgres_outage_of_twenty_seconds(make_run) -> None:  # noqa: ANN001
    # Given the adapter and two workers, and a mailbox filling up over 30 s
    run = make_run("postgres")
    # When PostgreSQL stops (fast shutdown) for 20 s in the middle of it
    failures = run_scenario(run, "postgres")
    # Then nothing is lost or doubled, and the processes came back by themselves (none was restarted)
    then_exact(run, failures)
