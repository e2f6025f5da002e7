"""`helpdesk <command>` registers only the module of that command: the table that says which is which holds.
And `--json` piped is the text rich would have printed."""

from __future__ import annotations

import io
import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest
import typer
import typer.main
from rich.console import Console

from ops import cli
from ops.shared_cli import _json_default, dump
from tests.cli import cli_env, run_cli

ROOT = Path(__file__).resolve().parents[2]


def names_registered_by(module: str) -> set[str]:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Test app."""

    cli.REGISTRARS[module](app)
    return set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


@pytest.mark.parametrize("module", list(cli.REGISTRARS))
def test_each_module_registers_exactly_the_commands_the_table_gives_it(module: str) -> None:
    # Given the commands the table sends to this module
    claimed = {name for name, owner in cli.COMMANDS.items() if owner == module}
    # When the module registers its commands on an app of its own
    registered = names_registered_by(module)
    # Then they are the same
    assert registered == claimed


def test_every_command_of_the_table_has_its_module() -> None:
    assert set(cli.COMMANDS.values()) == set(cli.REGISTRARS)


def test_json_written_to_a_pipe_is_what_rich_prints(capsys: pytest.CaptureFixture[str]) -> None:
    # Given data of every kind a command dumps
    data = {"number": "HD-1", "subject": "Licitaciones — ¿cómo publicar?", "score": 0.1235, "needs_triage": False, "team": None,
            "created_at": datetime(2026, 12, 6, 9, 30, tzinfo=timezone.utc), "suggestions": [{"title": "Lots", "tags": []}], "empty": {}}
    expected = io.StringIO()
    Console(file=expected, width=100).print_json(json.dumps(data, default=_json_default, ensure_ascii=False))
    # When
    dump(data)
    # Then the same text, byte for byte
    assert capsys.readouterr().out == expected.getvalue()


PLUGIN_DIST = """Metadata-Version: 2.1
Name: marker-plugin
Version: 1.0
"""


PLUGIN_MODULE = """import pathlib
pathlib.Path({mark!r}).write_text("loaded")


class Plugin:
    def new_schema_validator(self, *args, **kwargs):
        return None, None, None


plugin = Plugin()
"""


def test_pydantic_plugins_are_not_looked_for_unless_the_desk_asks(tmp_path: Path) -> None:
    # Given an installed pydantic plugin that leaves a mark when pydantic loads it
    site = tmp_path / "site"
    (site / "marker_plugin-1.0.dist-info").mkdir(parents=True)
    (site / "marker_plugin-1.0.dist-info" / "METADATA").write_text(PLUGIN_DIST)
    (site / "marker_plugin-1.0.dist-info" / "entry_points.txt").write_text("[pydantic]\nmarker = marker_plugin:plugin\n")
    mark = tmp_path / "loaded"
    (site / "marker_plugin.py").write_text(PLUGIN_MODULE.format(mark=str(mark)))
    env = cli_env(data_dir=tmp_path / "data")
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT)])
    env.pop("PYDANTIC_DISABLE_PLUGINS", None)

    # When a command that builds pydantic models runs
    run_cli(["tickets", "--json"], env, cwd=ROOT)
    # Then pydantic never looked for it
    assert not mark.exists()

    # And a desk that wants its plugins sets the variable itself (empty: every plugin)
    run_cli(["tickets", "--json"], {**env, "PYDANTIC_DISABLE_PLUGINS": ""}, cwd=ROOT)
    assert mark.exists()
