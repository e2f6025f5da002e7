"""The generic "stored" signal: the worker notes every stored item's source; only adapters that act on stored items keep theirs."""

from __future__ import annotations

import subprocess
import sys

import redis

from intake.state import ProcessedLog


def test_given_an_imap_source_when_recorded_then_the_imap_adapter_takes_it_for_its_account(redis_url: str, namespace: str) -> None:
    # Given the log on a Redis namespace of this test's own
    log = ProcessedLog(redis.Redis.from_url(redis_url), namespace)
    source = "imap:1a2b3c4d/INBOX;uidvalidity=7;uid=42"

    # When the worker records the stored item
    noted = log.record(source)

    # Then the IMAP adapter of that account takes it
    assert noted is True
    assert log.take("imap", "1a2b3c4d") == [source]


def test_given_sources_of_adapters_that_do_not_act_on_stored_items_then_nothing_is_kept(redis_url: str, namespace: str) -> None:
    client = redis.Redis.from_url(redis_url)
    log = ProcessedLog(client, namespace)

    noted = [log.record(s) for s in ("files:/tmp/a.eml", "slack:T1/C1/1700000000.1", "x:dm/123", "no-colon-at-all", "imap:")]

    assert noted == [False] * 5
    assert list(client.scan_iter(match=f"{namespace}:*")) == []


def test_the_worker_wiring_imports_no_intake_adapter() -> None:
    # When workers.actors is imported in a fresh interpreter, no adapter module (IMAP, X, files) comes with it
    code = "import sys, workers.actors; print(sorted(m for m in sys.modules if m in ('intake.imap', 'intake.x', 'intake.files')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"
