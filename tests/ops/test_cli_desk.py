"""Working a ticket at the command line, in real processes on SQLite and PostgreSQL: show, claim, assign, note,
pending, resolve, reopen, reclassify — through the same desk operations and permission rules as Slack."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select

from config.settings import Settings
from ops.runtime import Runtime
from storage import audit
from storage.intake_store import CONTACT, IDENTITY, MESSAGE, ORGANISATION, TICKET
from tests.cli import HELPDESK, cli_env, run_cli, settings_env

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def seed_ticket(engine: Engine, *, subject: str = "Validation errors in our tender data", channel: str = "email",
                address: str = "ana@hacienda.gob.mx", name: str = "Ana Gómez", team: str = "data", status: str = "open",
                opened: datetime | None = None, first_due: datetime | None = None, resolution_due: datetime | None = None,
                type_: str = "schema", needs_triage: bool = False, assignee: str | None = None, text: str = "Hello, can you help?") -> int:
    """A ticket with its contact, identity, organisation and first message, as intake stores them."""
    opened = opened or NOW - timedelta(hours=2)
    domain = address.rsplit("@", 1)[1] if "@" in address else None
    with engine.begin() as c:
        org = None
        if domain:
            org = c.execute(select(ORGANISATION.c.id).where(ORGANISATION.c.domain == domain)).scalar() or c.execute(
                insert(ORGANISATION).values(domain=domain, sector="government", created_at=opened).returning(ORGANISATION.c.id)).scalar()
        contact = c.execute(select(IDENTITY.c.contact_id).where(IDENTITY.c.channel == channel, IDENTITY.c.address == address)).scalar()
        if contact is None:
            contact = c.execute(insert(CONTACT).values(display_name=name, organisation_id=org, created_at=opened).returning(CONTACT.c.id)).scalar()
            c.execute(insert(IDENTITY).values(contact_id=contact, channel=channel, address=address, created_at=opened))
        ticket = c.execute(insert(TICKET).values(
            status=status, subject=subject, channel=channel, type=type_, sector="government", language="en", team=team, priority="normal",
            contact_id=contact, organisation_id=org, created_at=opened, updated_at=opened, assignment_count=0, needs_triage=needs_triage,
            paused_business_seconds=0.0, reopened_count=0, assignee=assignee, sla_policy="standard",
            first_response_due_at=first_due if first_due is not None else NOW + timedelta(days=2),
            resolution_due_at=resolution_due if resolution_due is not None else NOW + timedelta(days=10),
            classification={"type": {"value": type_, "confidence": 0.81, "reasons": ["model 0001: 0.81 schema (next: tools 0.10)"]}},
            routing={"team": team, "rule": "schema-questions", "reasons": ["keyword 'schema' → data"]},
        ).returning(TICKET.c.id)).scalar()
        c.execute(insert(MESSAGE).values(ticket_id=ticket, channel=channel, external_id=f"m{ticket}@{channel}", direction="in", kind="enquiry",
                                         contact_id=contact, sender_address=address, sender_name=name, subject=subject, text=text,
                                         content_hash=f"h{ticket}", received_at=opened, stored_at=opened))
    return ticket


@pytest.fixture
def desk_env(settings: Settings) -> dict[str, str]:
    return settings_env(settings, staff="priya")


@pytest.fixture
def engine_of(settings: Settings):  # noqa: ANN201 - Engine
    with Runtime(settings) as runtime:
        yield runtime.engine


def _fails(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run([*HELPDESK, *args], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, (result.stdout, result.stderr)
    return result


def _ticket(engine: Engine, ticket_id: int) -> Any:
    with engine.connect() as c:
        return c.execute(select(TICKET).where(TICKET.c.id == ticket_id)).one()


def _tickets_json(args: list[str], env: dict[str, str]) -> list[dict[str, Any]]:
    return json.loads(run_cli(["tickets", "--json", *args], env).stdout)


def test_given_an_open_ticket_when_staff_work_it_at_the_command_line_then_each_step_is_done_and_recorded(
        engine_of: Engine, desk_env: dict[str, str]) -> None:
    # Given an open ticket of the data team
    number = f"HD-{seed_ticket(engine_of)}"
    # When priya (HELPDESK_STAFF) claims it, notes, sets it pending, then resolves and reopens it
    claimed = run_cli(["claim", number], desk_env).stdout
    noted = run_cli(["note", number, "Asked the enquirer for their release file"], desk_env).stdout
    paused = run_cli(["pending", number], desk_env).stdout
    paused_row = _tickets_json(["--status", "pending"], desk_env)[0]
    resolved = run_cli(["resolve", number], desk_env).stdout
    reopened = run_cli(["reopen", number, "--by", "jonas"], desk_env).stdout
    shown = run_cli(["show", number], desk_env).stdout
    # Then every step says what it did
    assert f"{number} claimed" in claimed
    assert f"note added to {number}" in noted
    assert f"{number} is pending" in paused
    assert paused_row["sla_paused"] is True
    assert f"{number} resolved" in resolved
    assert f"{number} reopened" in reopened
    # And the ticket shows its conversation, reasons, SLA clocks and history
    assert "Asked the enquirer for their release file" in shown
    assert "keyword 'schema' → data" in shown
    assert "first response" in shown
    assert "status changed" in shown
    assert _ticket(engine_of, int(number[3:])).assignee == "priya"


def test_given_a_ticket_when_assigned_to_a_colleague_then_it_is_theirs(engine_of: Engine, desk_env: dict[str, str]) -> None:
    number = f"HD-{seed_ticket(engine_of)}"
    done = run_cli(["assign", number, "jonas"], desk_env).stdout
    assert f"{number} assigned to jonas" in done
    assert _ticket(engine_of, int(number[3:])).assignee == "jonas"


def test_given_a_ticket_when_reclassified_to_its_own_type_then_it_says_unchanged(engine_of: Engine, desk_env: dict[str, str]) -> None:
    number = f"HD-{seed_ticket(engine_of, type_='schema')}"
    same = run_cli(["reclassify", number, "--type", "schema"], desk_env).stdout
    other = run_cli(["reclassify", number, "--type", "tools"], desk_env).stdout
    assert f"{number} type: unchanged (schema)" in same
    assert "schema → schema" not in same
    assert f"{number} type: schema → tools" in other


def test_given_a_manager_when_they_try_to_resolve_then_it_is_refused_with_the_reason_and_audited(
        engine_of: Engine, desk_env: dict[str, str]) -> None:
    ticket_id = seed_ticket(engine_of)
    refused = _fails(["resolve", f"HD-{ticket_id}", "--by", "maria"], desk_env)
    assert "maria (manager) may not resolve" in " ".join(refused.stderr.split())
    assert _ticket(engine_of, ticket_id).status == "open"
    assert [e.action for e in audit.entries(engine_of, outcome="refused")] == ["resolve"]


def test_given_no_such_ticket_when_claimed_then_it_exits_1_naming_it(engine_of: Engine, desk_env: dict[str, str]) -> None:
    missing = _fails(["claim", "HD-999"], desk_env)
    assert "there is no HD-999" in missing.stderr


def test_given_tickets_when_listed_as_json_then_each_carries_its_sla_clocks(engine_of: Engine, desk_env: dict[str, str]) -> None:
    late = seed_ticket(engine_of, first_due=NOW - timedelta(hours=1))
    seed_ticket(engine_of)
    rows = {r["number"]: r for r in _tickets_json([], desk_env)}
    assert rows[f"HD-{late}"]["sla_breached"] is True
    assert rows[f"HD-{late}"]["first_response_due_at"] == (NOW - timedelta(hours=1)).isoformat()
    assert {"first_response_due_at", "resolution_due_at", "sla_breached", "sla_paused"} <= set(rows[f"HD-{late}"])


def test_given_tickets_of_two_teams_when_filtered_then_only_the_matching_ones_are_listed(
        engine_of: Engine, desk_env: dict[str, str]) -> None:
    data = seed_ticket(engine_of, team="data", assignee="priya")
    late = seed_ticket(engine_of, team="tech", first_due=NOW - timedelta(minutes=5))
    triage = seed_ticket(engine_of, team="general", needs_triage=True)
    assert [r["number"] for r in _tickets_json(["--team", "data"], desk_env)] == [f"HD-{data}"]
    assert [r["number"] for r in _tickets_json(["--assignee", "priya"], desk_env)] == [f"HD-{data}"]
    assert [r["number"] for r in _tickets_json(["--breached"], desk_env)] == [f"HD-{late}"]
    assert [r["number"] for r in _tickets_json(["--needs-triage"], desk_env)] == [f"HD-{triage}"]


def test_given_a_breached_ticket_when_listed_at_80_columns_then_its_due_time_carries_the_breach_mark(
        engine_of: Engine, desk_env: dict[str, str]) -> None:
    seed_ticket(engine_of, first_due=NOW - timedelta(hours=1))
    out = run_cli(["tickets"], desk_env | {"COLUMNS": "80"}).stdout
    assert f"{(NOW - timedelta(hours=1)):%b %d %H:%M} ✖" in out


def test_the_command_line_has_a_version_and_conventional_help(tmp_path: Path) -> None:
    env = cli_env()
    version = run_cli(["--version"], env, cwd=tmp_path).stdout
    import_help = run_cli(["import", "--help"], env, cwd=tmp_path).stdout
    tickets_help = run_cli(["tickets", "--help"], env, cwd=tmp_path).stdout
    assert version.startswith("helpdesk 0.")
    assert "{paths}" not in import_help
    assert "import [OPTIONS] {PATH}..." in import_help  # typer's way of writing a required, repeatable argument
    assert "<bool>" not in tickets_help
    assert "--json " in tickets_help
