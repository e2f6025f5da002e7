"""What the reading commands show of a ticket: its SLA clocks read the same calendars through ``DeskClocks`` as through
the desk's own ``Desk``, and the reading commands import nothing they do not use (so they answer quickly)."""

from __future__ import annotations

import subprocess
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from config.desk import load_desk
from config.settings import Settings, load_settings
from ops.runtime import Runtime
from ops.views import DeskClocks, ticket_row
from storage import queries
from tests.cli import HELPDESK, settings_env
from tests.ops.test_cli_desk import NOW, seed_ticket
from workers.desk.operations import Desk

# Imported by the commands that change tickets, the workers or migrations — not by one that reads.
NOT_FOR_READING = ("sqlmodel", "sqlalchemy.orm", "structlog", "alembic", "workers.desk.operations")
PROBE = ("import atexit, sys\n"
         "atexit.register(lambda: print('imported:', sorted(m for m in {names!r} if m in sys.modules), file=sys.stderr))\n"
         "sys.argv = ['helpdesk', *{argv!r}]\n"
         "from ops.cli import main\n"
         "main()\n")


@pytest.mark.parametrize("team", ["general", "data", "tech", "engagement", "latam", "triage", "no-such-team"])
def test_a_teams_calendar_is_the_one_the_desk_finds(team: str) -> None:
    # Given the desk's configuration
    config = load_desk(load_settings(environ={}))
    # When a team's calendar is asked of both
    ours, desks = DeskClocks(config).calendar(team), Desk(config).calendar(team)
    # Then it is the same (an unknown team: the default team's)
    assert vars(ours) == vars(desks)


def test_a_ticket_row_is_the_same_with_either(engine: Engine) -> None:
    # Given tickets of several teams, one past its first-response target and one paused
    seed_ticket(engine, team="data", first_due=NOW - timedelta(hours=1))
    seed_ticket(engine, team="latam", opened=NOW - timedelta(days=3))
    seed_ticket(engine, team="no-such-team", status="pending")
    config = load_desk(load_settings(environ={}))
    with engine.connect() as c:
        rows = queries.list_tickets(c, now=NOW)
    # When each is shown with the desk's clocks and with the desk itself
    # Then the rows are the same
    assert [ticket_row(r, DeskClocks(config), NOW) for r in rows] == [ticket_row(r, Desk(config), NOW) for r in rows]


@pytest.mark.parametrize("argv", [["tickets", "--json"], ["status", "--json"], ["show", "HD-1", "--json"]], ids=" ".join)
def test_a_reading_command_imports_nothing_it_does_not_use(settings: Settings, argv: list[str]) -> None:
    # Given a migrated database with a ticket
    with Runtime(settings) as runtime:
        seed_ticket(runtime.engine)
    names = NOT_FOR_READING + (("sqlalchemy.dialects.postgresql",) if settings.resolved_database_url.startswith("sqlite") else ())
    # When the command runs
    done = subprocess.run([*HELPDESK[:1], "-c", PROBE.format(names=names, argv=argv)], env=settings_env(settings),
                          capture_output=True, text=True, timeout=120)
    # Then it answered, and imported none of them
    assert done.returncode in (0, 1), done.stderr  # status: 1 when unhealthy is an answer too
    assert done.stdout.strip()
    assert done.stderr.strip().splitlines()[-1] == "imported: []"
