"""Where worker processes keep their Prometheus files: one folder, for dramatiq's counters and the desk's histograms."""

from __future__ import annotations

import tempfile
from pathlib import Path

from workers.ops.observability import metrics_dir, use_metrics_dir


def test_given_prometheus_multiproc_dir_when_the_folder_is_asked_then_it_wins(tmp_path: Path) -> None:
    # Given both prometheus_client's and dramatiq's variables
    environ = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"), "dramatiq_prom_db": str(tmp_path / "dramatiq")}
    # When the metrics folder is asked for
    folder = metrics_dir(environ)
    # Then it is prometheus_client's
    assert folder == tmp_path / "prom"


def test_given_only_dramatiqs_variable_when_the_folder_is_asked_then_it_is_dramatiqs(tmp_path: Path) -> None:
    # Given only dramatiq's variable
    environ = {"dramatiq_prom_db": str(tmp_path / "dramatiq")}
    # When the metrics folder is asked for
    folder = metrics_dir(environ)
    # Then it is dramatiq's
    assert folder == tmp_path / "dramatiq"


def test_given_no_variable_when_the_folder_is_asked_then_it_is_dramatiqs_default() -> None:
    # Given neither variable
    # When the metrics folder is asked for
    folder = metrics_dir({})
    # Then it is the folder dramatiq's Prometheus middleware uses by default
    assert folder == Path(tempfile.gettempdir()) / "dramatiq-prometheus"


def test_given_a_worker_starting_when_it_sets_up_its_metrics_then_prometheus_client_is_in_multiprocess_mode(tmp_path: Path) -> None:
    # Given the environment of a worker about to start, with a folder not made yet
    environ = {"dramatiq_prom_db": str(tmp_path / "metrics")}
    # When it sets up its metrics
    use_metrics_dir(environ)
    # Then prometheus_client's switch names that folder
    assert environ["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path / "metrics")


def test_given_a_worker_starting_when_it_sets_up_its_metrics_then_dramatiq_writes_to_the_same_folder(tmp_path: Path) -> None:
    # Given the environment of a worker about to start, with prometheus_client's variable set by the operator
    environ = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    # When it sets up its metrics
    use_metrics_dir(environ)
    # Then dramatiq's Prometheus middleware is pointed at the same folder
    assert environ["dramatiq_prom_db"] == str(tmp_path / "metrics")


def test_given_a_worker_starting_when_it_sets_up_its_metrics_then_the_folder_exists(tmp_path: Path) -> None:
    # Given a folder not made yet
    environ = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "new" / "metrics")}
    # When the worker sets up its metrics
    folder = use_metrics_dir(environ)
    # Then the folder exists
    assert folder.is_dir()
