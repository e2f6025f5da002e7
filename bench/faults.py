"""Benchmark: the fault-injection scenarios of tests/faults, run once each, with their figures as a table.

    python bench/faults.py [--scenario sigkill|redis|postgres …] [--seed 13] [--feed-seconds 30] [--out DIR]

Each scenario starts a fresh Redis (AOF, everysec), database (on a private PostgreSQL cluster) and
Dovecot mailbox, runs `helpdesk intake imap` and two `helpdesk worker` processes, APPENDs 1,000 e-mails
(new enquiries, replies, exact repeats, auto-replies and bounces, real mails from the shared corpus)
while its faults land, waits for the pipeline to settle and checks the accounting (see
tests/faults/harness.py). Prints per scenario: messages, the report's counts, seconds to settle after
the last APPEND, kills, Redis restarts, PostgreSQL downtime, failed processing attempts and peak RSS.
Needs root (the cluster runs as the `postgres` OS user), dovecot, redis-server and PostgreSQL 15.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.desk import load_desk  # noqa: E402
from config.settings import load_settings  # noqa: E402
from tests.faults.harness import SCENARIOS, Lab, Run, build_mailbox, print_figures, run_scenario  # noqa: E402
from workers.intake.training import ModelStore, load_or_train  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="default: all three")
    parser.add_argument("--seed", type=int, default=13, help="seed of the mailbox")
    parser.add_argument("--feed-seconds", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=None, help="logs and figures (default: a new /tmp/hdfaults-bench-* folder)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix=f"hdfaults-bench-{time.strftime('%Y%m%dT%H%M%S')}-", dir="/tmp"))
    out.mkdir(parents=True, exist_ok=True)
    model_dir = out / "models"
    load_or_train(load_desk(load_settings(environ={})), ModelStore(model_dir))  # the workers find a trained model
    mailbox = build_mailbox(seed=args.seed)
    figures = []
    lab = Lab()
    try:
        lab.start()
        for name in args.scenario or list(SCENARIOS):
            run = Run(lab, name, out / name, model_dir, build_mailbox(seed=args.seed), feed_seconds=args.feed_seconds)
            try:
                failures = run_scenario(run, name)
            except Exception as exc:  # noqa: BLE001 - report it and go on with the next scenario
                failures = run.figures.failures = [f"{type(exc).__name__}: {exc}"]
            finally:
                run.close()
            figures.append(run.figures)
            print(f"{name}: {'ok' if not failures else f'{len(failures)} check(s) failed'}; logs in {out / name / 'logs'}", flush=True)
            for failure in failures:
                print(f"  - {failure.splitlines()[0][:300]}")
    finally:
        lab.close()
    (out / "faults-figures.json").write_text(json.dumps([asdict(f) for f in figures], indent=2, ensure_ascii=False))
    print(f"\nfault injection, {len(mailbox.items):,} messages per scenario ({mailbox.composition()}); figures in {out / 'faults-figures.json'}\n")
    print_figures(figures)
    return 0 if all(not f.failures for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
