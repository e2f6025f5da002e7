"""``helpdesk worker --processes N``: N real worker processes under one parent, against real Redis and databases."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from config.settings import Settings
from ops.worker_pool import forking
from tests.cli import HELPDESK, cli_env, run_cli
from tests.factories import make_email

pytestmark = pytest.mark.slow


def _pool_env(tmp_path: Path, redis_url: str, namespace: str, database_url: str, model_dir: Path) -> dict[str, str]:
    return cli_env(data_dir=tmp_path / "data", redis_url=redis_url, redis_namespace=namespace, database_url=database_url,
                   model_dir=model_dir, log_level="INFO", log_format="json")


def _queue_mails(tmp_path: Path, env: dict[str, str], count: int) -> None:
    mails = tmp_path / "mails"
    mails.mkdir()
    for i in range(count):
        (mails / f"{i}.eml").write_bytes(make_email(sender=f"person{i}@example{i % 5}.org", subject=f"Question {i} about the schema",
                                                    body=f"Hello, question number {i}: how do we publish our data?",
                                                    message_id=f"<pool-{i}@example.org>"))
    run_cli(["import", str(mails)], env)


def _events(stderr: str, event: str) -> list[dict]:
    found = []
    for line in stderr.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == event:
            found.append(record)
    return found


class _Lines:
    """The JSON log lines of a running process's stderr, read by a thread, awaited by event name."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[dict] = queue.Queue()
        self.seen: list[dict] = []
        threading.Thread(target=self._read, args=(process,), daemon=True).start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                continue

    def wait_for(self, event: str, count: int, timeout: float = 120.0) -> list[dict]:
        def matching() -> list[dict]:
            return [r for r in self.seen if r.get("event") == event]

        while len(matching()) < count:
            self.seen.append(self.lines.get(timeout=timeout))
        return matching()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_given_queued_mail_when_two_processes_drain_it_then_each_message_is_stored_once(
    tmp_path: Path, redis_url: str, namespace: str, database_url: str, model_dir: Path
) -> None:
    env = _pool_env(tmp_path, redis_url, namespace, database_url, model_dir)
    _queue_mails(tmp_path, env, 30)

    done = run_cli(["worker", "--processes", "2", "--threads", "2", "--until-idle"], env, timeout=300)

    started = _events(done.stderr, "worker process started")
    tickets = json.loads(run_cli(["tickets", "--json"], env).stdout)
    assert len({record["pid"] for record in started}) == 2
    assert len(tickets) == 30
    assert len({t["number"] for t in tickets}) == 30


def test_given_a_running_pool_when_a_child_dies_then_another_takes_its_place_and_sigterm_stops_them_all(
    tmp_path: Path, redis_url: str, namespace: str, model_dir: Path
) -> None:
    env = _pool_env(tmp_path, redis_url, namespace, f"sqlite:///{tmp_path / 'helpdesk.db'}", model_dir)
    pool = subprocess.Popen([*HELPDESK, "worker", "--processes", "2", "--threads", "1"], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        lines = _Lines(pool)
        first = [record["pid"] for record in lines.wait_for("worker process started", 2)]
        # each child is a worker of its own to the desk (its own broker id, heartbeat and liveness record)
        deadline = time.monotonic() + 120
        while {w["pid"] for w in json.loads(run_cli(["status", "--json"], env).stdout)["workers"]} != set(first):
            assert time.monotonic() < deadline, "the children never both reported alive"
            time.sleep(0.5)
        os.kill(first[0], signal.SIGKILL)
        restarted = lines.wait_for("worker process started", 3)[-1]

        pool.send_signal(signal.SIGTERM)
        status = pool.wait(timeout=120)
    finally:
        if pool.poll() is None:
            pool.kill()
            pool.wait()

    assert restarted["pid"] not in first
    assert restarted["process"] == 0
    assert status == 0
    assert [pid for pid in [*first, restarted["pid"]] if _alive(pid)] == []


def test_a_forked_child_ends_with_the_status_it_returns_or_the_signal_that_killed_it() -> None:
    done = forking(lambda index, stop: 3 + index)(1)
    assert done.wait(timeout=60) == 4
    failing = forking(lambda index, stop: 1 // 0)(0)  # what raises ends the child with 1, never back in the caller's code
    assert failing.wait(timeout=60) == 1
    sleeping = forking(lambda index, stop: time.sleep(120) or 0)(0)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            sleeping.wait(timeout=0.2)
        assert sleeping.poll() is None
        os.kill(sleeping.pid, signal.SIGKILL)
        assert sleeping.wait(timeout=60) == -signal.SIGKILL
    finally:
        if sleeping.poll() is None:
            os.kill(sleeping.pid, signal.SIGKILL)
            sleeping.wait(timeout=60)


def test_a_child_asked_to_stop_the_moment_it_is_forked_sees_the_request() -> None:
    # Given a child that ends with 0 once asked to stop, 1 if never asked
    child = forking(lambda index, stop: 0 if stop.wait(60) else 1)(0)
    try:
        # When SIGTERM comes at once, before the child has set anything up
        os.kill(child.pid, signal.SIGTERM)
        # Then it is the child's own request to stop, not the signal's default (killed) nor a handler it inherited
        assert child.wait(timeout=60) == 0
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=60)


def test_preloading_loads_what_a_first_message_would_and_leaves_no_thread(settings: Settings) -> None:
    from classifiers.sector import _build_suffixes, _suffixes, registrable_domain  # noqa: PLC0415
    from storage.tickets import _ticket_class  # noqa: PLC0415
    from workers.desk.public_holidays import dates  # noqa: PLC0415
    from workers.ops.preload import preload  # noqa: PLC0415

    for cached in (registrable_domain, _suffixes, _build_suffixes, _ticket_class, dates):  # as in a new process
        cached.cache_clear()
    before = set(threading.enumerate())

    preload(settings)

    assert set(threading.enumerate()) - before == set()  # none left behind (another test's server thread may end meanwhile)
    assert _build_suffixes.cache_info().currsize == 1
    assert _ticket_class.cache_info().currsize == 1
    hits = dates.cache_info().hits
    for country in ("GB", "FR", "MX"):  # the teams' countries (config/teams.yaml), this year
        dates(country, datetime.now(UTC).year)
    assert dates.cache_info().hits == hits + 3
    assert f"MX:{datetime.now(UTC).year + 1}" in settings.public_holidays_file.read_text()  # kept for the next start


def test_preloading_refuses_to_leave_a_thread_a_fork_would_drop(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from workers.ops import preload as module  # noqa: PLC0415

    stop = threading.Event()
    started = threading.Thread(target=stop.wait, name="left-behind", daemon=True)
    monkeypatch.setattr("storage.tickets._ticket_class", started.start)
    try:
        with pytest.raises(RuntimeError, match="left-behind"):
            module.preload(settings)
    finally:
        stop.set()
