"""`helpdesk org …` and `helpdesk engagement …` as staff use them, in real processes, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

from config.settings import Settings
from tests.cli import HELPDESK, run_cli, settings_env


def _json(args: list[str], env: dict[str, str]) -> object:
    return json.loads(run_cli([*args, "--json"], env).stdout)


def test_staff_record_an_implementation_and_the_help_given(settings: Settings, tmp_path: Path) -> None:
    env = settings_env(settings, staff="ana")
    # Given a ministry the desk starts working with (HELPDESK_STAFF says who acts)
    run_cli(["org", "set", "hacienda.gob.mx", "--name", "Secretaría de Hacienda", "--sector", "government", "--country", "MX",
             "--standard", "ocds", "--stage", "scoping", "--url", "https://datos.hacienda.gob.mx/ocds"], env)
    run_cli(["org", "set", "hacienda.gob.mx", "--standard", "ocds", "--stage", "mapping", "--by", "tom"], env)
    # When a mapping review is done for it
    added = run_cli(["engagement", "add", "hacienda.gob.mx", "--kind", "mapping_review", "--hours", "6", "--note", "Field mapping"], env)
    assert "recorded: engagement 1" in added.stdout
    run_cli(["engagement", "update", "1", "--status", "delivered", "--add-hours", "1.5", "--link", "https://docs.example/r1"], env)
    # Then the organisation shows its stage, history and the engagement
    shown = _json(["org", "show", "hacienda.gob.mx"], env)
    assert shown["implementations"][0]["stage"] == "mapping"
    assert [(c["from"], c["to"], c["by"]) for c in shown["stage_changes"]] == [("scoping", "mapping", "tom"), (None, "scoping", "ana")]
    assert shown["engagements"][0]["hours"] == 7.5
    assert shown["engagements"][0]["status"] == "delivered"
    assert [o["domain"] for o in _json(["org", "list", "--stage", "mapping"], env)] == ["hacienda.gob.mx"]
    assert _json(["org", "list", "--stage", "using"], env) == []
    assert _json(["engagement", "list", "--org", "hacienda.gob.mx"], env)[0]["kind"] == "mapping_review"
    # And the report carries engagements by kind with hours, and the funnel
    report = json.loads(run_cli(["report", "--json"], env).stdout)
    assert report["engagements"]["by_kind"] == {"mapping_review": {"count": 1, "hours": 7.5}}
    assert report["implementations"] == {"ocds": {"mapping": 1}}
    human = run_cli(["report"], env).stdout
    assert "Engagements (1, 7.5 h" in human
    assert "Implementations by stage" in human


def test_refusals_change_nothing_and_say_why(settings: Settings) -> None:
    env = settings_env(settings)
    for args, reason in (
        (["org", "set", "watch.org", "--standard", "ocds", "--stage", "scoping"], "nobody is not on the desk"),
        (["org", "set", "watch.org", "--by", "mallory", "--name", "Watch"], "mallory is not on the desk"),
        (["engagement", "add", "watch.org", "--kind", "astrology", "--by", "ana"], "unknown engagement kind"),
        (["reclassify", "HD-1", "--type", "schema", "--by", "mallory"], "mallory is not on the desk"),
        (["reply", "HD-1", "hello", "--by", "maria"], "maria (manager) may not reply"),
    ):
        result = subprocess.run([*HELPDESK, *args], env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 1, result.stderr
        assert reason in " ".join(result.stderr.split())
    assert _json(["org", "list", "--all"], env) == []
    from storage import audit  # noqa: PLC0415
    from storage.db import create_db_engine  # noqa: PLC0415

    engine = create_db_engine(settings.resolved_database_url)
    try:
        refused = audit.entries(engine, outcome="refused")
    finally:
        engine.dispose()
    assert sorted(e.actor for e in refused) == ["mallory", "mallory", "maria", "nobody"]
    assert {e.action for e in refused} == {"org.set", "reclassify", "reply"}


def test_organisations_round_trip_through_csv(settings: Settings, tmp_path: Path) -> None:
    env = settings_env(settings, staff="ana")
    source = tmp_path / "orgs.csv"
    with source.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["domain", "name", "sector", "country", "other_domains", "standard", "stage", "urls", "notes"])
        writer.writerow(["hacienda.gob.mx", "Hacienda", "government", "MX", "shcp.gob.mx", "ocds", "publishing", "https://a.example/ocds", ""])
        writer.writerow(["watch.org", "Watch", "civil_society", "", "", "oc4ids", "prospect", "", "met at a conference"])
        writer.writerow(["not a domain", "", "", "", "", "", "", "", ""])
    result = run_cli(["org", "import", str(source)], env)
    assert "imported 2 row(s); refused 1" in result.stdout
    assert "line 4" in result.stderr
    exported = tmp_path / "out.csv"
    run_cli(["org", "export", "--out", str(exported)], env)
    rows = list(csv.DictReader(exported.open(encoding="utf-8")))
    assert [(r["domain"], r["other_domains"], r["standard"], r["stage"]) for r in rows] == [
        ("hacienda.gob.mx", "shcp.gob.mx", "ocds", "publishing"), ("watch.org", "", "oc4ids", "prospect")]
    # The further domain finds the same organisation
    assert _json(["org", "show", "shcp.gob.mx"], env)["domain"] == "hacienda.gob.mx"
