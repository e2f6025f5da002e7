"""The README is part of the interface: it must name every setting and the two commands CI runs."""

from __future__ import annotations

from pathlib import Path

from config.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_every_setting_is_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [f"HELPDESK_{name.upper()}" for name in Settings.model_fields if f"`HELPDESK_{name.upper()}`" not in readme]
    assert not missing, f"README configuration table lacks {missing}"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "./scripts/test" in readme
    assert "./scripts/demo" in readme
    assert "./scripts/test" in (ROOT / ".ci" / "run").read_text()
