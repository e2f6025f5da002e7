"""The intake → stored-message histogram: kept by prometheus_client in the workers' multiprocess files, served on /metrics
(and on the worker's own metrics port) under its public name — real worker processes, real Redis, a real socket."""

from __future__ import annotations

import signal
from pathlib import Path

import dramatiq
import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from config.queues import INTAKE_QUEUE, PROCESS_ACTOR
from config.settings import Settings
from ops.metrics import WorkerMetricsCollector
from ops.runtime import Runtime
from storage.models import utcnow
from tests.cli import run_cli, settings_env, start_cli
from tests.factories import make_message
from tests.intake.imap_helpers import wait_for
from tests.servers.asgi import serve
from tests.servers.base import free_port

pytestmark = pytest.mark.slow
BUCKET_BOUNDS = ("0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0", "30.0", "60.0", "300.0", "3600.0", "+Inf")


def _scrape(path: Path) -> str:
    registry = CollectorRegistry()
    registry.register(WorkerMetricsCollector(path))
    return generate_latest(registry).decode()


def _enqueue(runtime: Runtime, external_id: str) -> None:
    """An intake message received now, as an adapter enqueues it."""
    message = make_message(external_id, received_at=utcnow())
    runtime.broker.enqueue(dramatiq.Message(queue_name=INTAKE_QUEUE, actor_name=PROCESS_ACTOR, args=(message.to_json(),),
                                            kwargs={}, options={}))


def _served(port: int) -> str:
    """What a worker's metrics port serves now; empty while nothing listens."""
    try:
        return httpx.get(f"http://127.0.0.1:{port}/").text
    except httpx.HTTPError:
        return ""


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """This test's own multiprocess folder (a shared one would add other tests' samples)."""
    folder = tmp_path / "prometheus"
    folder.mkdir()
    return folder


# -- before any worker has stored a message ----------------------------------------------------------
def test_given_no_worker_has_stored_a_message_when_scraped_then_the_histogram_is_there_counting_none(files: Path) -> None:
    # Given an empty metrics folder
    # When it is scraped
    text = _scrape(files)
    # Then the histogram is there, counting nothing
    assert "helpdesk_intake_to_ticket_seconds_count 0.0" in text


@pytest.mark.parametrize("bound", BUCKET_BOUNDS)
def test_given_no_worker_has_stored_a_message_when_scraped_then_every_bucket_has_its_public_bound(files: Path, bound: str) -> None:
    # Given an empty metrics folder
    # When it is scraped
    text = _scrape(files)
    # Then the bucket of this bound is exposed under its public name, at zero
    assert f'helpdesk_intake_to_ticket_seconds_bucket{{le="{bound}"}} 0.0' in text


def test_given_no_metrics_folder_when_scraped_then_the_histogram_is_still_there(tmp_path: Path) -> None:
    # Given a folder that does not exist (no worker ever ran on this host)
    # When it is scraped
    text = _scrape(tmp_path / "never-made")
    # Then the histogram is there, counting nothing
    assert "helpdesk_intake_to_ticket_seconds_sum 0.0" in text


# -- real worker processes -----------------------------------------------------------------------
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_given_two_worker_runs_each_storing_a_message_when_metrics_are_scraped_then_both_are_counted(
        settings: Settings, files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given two `helpdesk worker` processes, one after the other, each storing one message
    env = settings_env(settings)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(files)
    with Runtime(settings) as runtime:
        for external_id in ("first@example.org", "second@example.org"):
            _enqueue(runtime, external_id)
            run_cli(["worker", "--until-idle"], env)
        # When /metrics is scraped on this host
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(files))
        with serve(__import__("ops.web", fromlist=["build_app"]).build_app(runtime)) as url:
            text = httpx.get(f"{url}/metrics").text
    # Then both processes' observations are counted, under the public name
    assert "helpdesk_intake_to_ticket_seconds_count 2.0" in text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_given_a_worker_storing_a_message_when_its_folder_is_read_then_the_latency_is_in_the_bucket_it_fell_in(
        settings: Settings, files: Path) -> None:
    # Given a `helpdesk worker` that stored a message received just before (well under a minute)
    env = settings_env(settings)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(files)
    with Runtime(settings) as runtime:
        _enqueue(runtime, "timed@example.org")
        run_cli(["worker", "--until-idle"], env)
    # When its metrics folder is read
    text = _scrape(files)
    # Then the observation is in the one-minute bucket
    assert 'helpdesk_intake_to_ticket_seconds_bucket{le="60.0"} 1.0' in text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_given_a_worker_with_a_metrics_port_when_it_has_stored_a_message_then_its_port_serves_the_histogram(
        settings: Settings, files: Path) -> None:
    # Given a running `helpdesk worker` that serves its metrics on a port of its own
    port = free_port()
    env = settings_env(settings, worker_metrics_port=port)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(files)
    with Runtime(settings) as runtime:
        worker = start_cli(["worker"], env)
        try:
            # When it has stored a message
            _enqueue(runtime, "served@example.org")

            wait_for(lambda: "helpdesk_intake_to_ticket_seconds_count 1.0" in _served(port), timeout=120, interval=0.5)
            text = _served(port)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)
    # Then its port serves the histogram, that message counted
    assert 'helpdesk_intake_to_ticket_seconds_bucket{le="+Inf"} 1.0' in text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_given_a_pool_with_a_metrics_port_then_one_child_serves_what_every_child_records(settings: Settings, files: Path) -> None:
    # Given `helpdesk worker --processes 2` with a metrics port (one port for the host's workers)
    port = free_port()
    env = settings_env(settings, worker_metrics_port=port)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(files)
    with Runtime(settings) as runtime:
        pool = start_cli(["worker", "--processes", "2", "--threads", "1"], env)
        try:
            # When they have stored messages
            for n in range(4):
                _enqueue(runtime, f"pooled{n}@example.org")

            wait_for(lambda: "helpdesk_intake_to_ticket_seconds_count 4.0" in _served(port), timeout=120, interval=0.5)
            text = _served(port)
        finally:
            pool.send_signal(signal.SIGTERM)
            _, errors = pool.communicate(timeout=120)
    # Then the port serves what both recorded, and no child failed over the port (none was started again)
    assert 'helpdesk_intake_to_ticket_seconds_bucket{le="+Inf"} 4.0' in text
    assert "starting it again" not in errors, errors  # the pool's log says why a child ended
    assert pool.returncode == 0
