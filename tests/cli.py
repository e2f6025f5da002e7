"""Running the real `helpdesk` command in subprocesses, with a test's own settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from config.settings import Settings

HELPDESK = [sys.executable, "-m", "ops"]


def cli_env(**settings: object) -> dict[str, str]:
    """The parent environment without any HELPDESK_* variable, plus ``settings`` as HELPDESK_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    env.update({f"HELPDESK_{k.upper()}": str(v) for k, v in settings.items()})
    env["COLUMNS"] = "200"
    return env


def run_cli(args: list[str], env: dict[str, str], timeout: float = 300, cwd: Path | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([*HELPDESK, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    if result.returncode != 0:
        raise AssertionError(f"helpdesk {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def start_cli(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([*HELPDESK, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def settings_env(s: "Settings", **extra: object) -> dict[str, str]:
    """The environment of a `helpdesk` process sharing a test's settings: its namespace, database, data and model folders."""
    return cli_env(data_dir=s.data_dir, redis_url=s.redis_url, redis_namespace=s.redis_namespace, database_url=s.database_url,
                   model_dir=s.model_dir, log_level="WARNING", **extra)
