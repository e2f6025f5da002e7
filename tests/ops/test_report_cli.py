"""`helpdesk report --by …` in real processes: any combination of dimensions, as JSON, CSV and a table."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta

from sqlalchemy import Engine

from tests.cli import HELPDESK, run_cli
from tests.ops.test_cli_desk import NOW, desk_env, engine_of, seed_ticket  # noqa: F401 - fixtures


def test_given_tickets_when_reported_by_type_and_month_then_each_combination_is_counted(
        engine_of: Engine, desk_env: dict[str, str]) -> None:  # noqa: F811
    seed_ticket(engine_of, type_="schema")
    seed_ticket(engine_of, type_="schema")
    seed_ticket(engine_of, type_="tools", address="ben@example.org")
    data = json.loads(run_cli(["report", "--by", "type,month,organisation", "--month", f"{(NOW - timedelta(hours=2)):%Y-%m}", "--json"], desk_env).stdout)
    month = f"{(NOW - timedelta(hours=2)):%Y-%m}"
    assert data["rows"] == [{"type": "schema", "month": month, "organisation": "hacienda.gob.mx", "tickets": 2},
                            {"type": "tools", "month": month, "organisation": "example.org", "tickets": 1}]


def test_given_tickets_when_reported_by_channel_as_csv_then_standard_output_is_csv(engine_of: Engine, desk_env: dict[str, str]) -> None:  # noqa: F811
    seed_ticket(engine_of)
    out = run_cli(["report", "--by", "channel", "--csv", "-"], desk_env).stdout
    assert out.splitlines() == ["channel,tickets", "email,1"]


def test_given_an_unknown_dimension_when_reported_then_it_exits_2_naming_the_choices(desk_env: dict[str, str]) -> None:  # noqa: F811
    result = subprocess.run([*HELPDESK, "report", "--by", "type,colour"], env=desk_env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "type, sector, channel, language, team, organisation, month" in " ".join(result.stderr.split())
