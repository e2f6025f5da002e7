"""Logging is configured by every command, and structlog is imported only by one that logs: a configuration given
before the import is applied by it — the newest one given — so no logger ever runs unconfigured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_a_configuration_given_before_structlog_is_imported_is_applied_by_its_import() -> None:
    # Given a fresh process that configures JSON logging with a secret, and only then imports structlog and logs
    done = _run("import sys\n"
                "from ops.logs import configure_logging\n"
                "configure_logging('json', 'INFO', ['TopSecret99'])\n"
                "print('imported before:', 'structlog' in sys.modules)\n"
                "import structlog\n"
                "structlog.get_logger('t').info('token command failed', detail='argv --client-secret=TopSecret99')\n"
                "structlog.get_logger('t').debug('below the level')\n")
    # Then structlog was not imported by the configuration, and the line is JSON, redacted, at the level configured
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "imported before: False"
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert (event["event"], event["level"]) == ("token command failed", "info")
    assert "TopSecret99" not in event["detail"]


def test_the_newest_configuration_given_before_the_import_is_the_one_applied() -> None:
    # Given a process configured twice before structlog is imported: JSON at INFO, then the console at WARNING
    done = _run("from ops.logs import configure_logging\n"
                "configure_logging('json', 'INFO')\n"
                "configure_logging('console', 'WARNING')\n"
                "import structlog\n"
                "structlog.get_logger('t').info('quiet')\n"
                "structlog.get_logger('t').warning('loud')\n"
                "print(type(structlog.__spec__.loader).__name__, structlog.__loader__ is structlog.__spec__.loader)\n")
    # Then the second applies (one console line), and structlog keeps its own loader
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "loud" in lines[0]
    assert not lines[0].startswith("{")
    assert done.stdout.strip() == "SourceFileLoader True"


def test_a_configuration_given_after_the_import_is_applied_at_once() -> None:
    # Given a process that imported structlog first
    done = _run("import structlog\n"
                "from ops.logs import configure_logging\n"
                "configure_logging('json', 'WARNING')\n"
                "structlog.get_logger('t').warning('now')\n")
    # Then its line follows the configuration
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stderr.strip())["event"] == "now"


def test_looking_structlog_up_without_importing_it_leaves_the_configuration_pending() -> None:
    # Given a process configured before structlog is imported, in which something only looks structlog up
    done = _run("import importlib.util\n"
                "from ops.logs import configure_logging\n"
                "configure_logging('json', 'WARNING')\n"
                "assert importlib.util.find_spec('structlog') is not None\n"
                "import structlog\n"
                "structlog.get_logger('t').warning('later')\n")
    # Then the import that follows still applies the configuration
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stderr.strip())["event"] == "later"
