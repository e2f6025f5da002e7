"""Staff actions on a ticket, as every surface (Slack, command line, web) does them: checked, idempotent, audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine

from config.desk import load_desk
from config.settings import Settings
from storage import audit
from tests.workers.desk_setup import MONDAY_10, open_ticket, read_ticket
from workers.desk.operations import Desk
from workers.errors import Forbidden
from workers.desk.ticket_actions import TicketActions


@pytest.fixture
def actions(desk_settings: Settings, engine: Engine) -> TicketActions:
    return TicketActions(engine, Desk(load_desk(desk_settings)), surface="cli")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_given_a_ticket_when_a_member_claims_it_twice_with_one_key_then_it_is_theirs_once(
    desk_settings: Settings, broker, engine: Engine, actions: TicketActions  # noqa: ANN001
) -> None:
    ticket_id = open_ticket(desk_settings, broker, engine, "c1")

    first = actions.claim("ana", ticket_id, key="k1")
    again = actions.claim("ana", ticket_id, key="k1")

    assert first.status == "done"
    assert again.status == "unchanged"
    assert read_ticket(engine, ticket_id).assignee == "ana"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_given_a_ticket_when_assigned_to_someone_outside_the_teams_then_nothing_changes(
    desk_settings: Settings, broker, engine: Engine, actions: TicketActions  # noqa: ANN001
) -> None:
    ticket_id = open_ticket(desk_settings, broker, engine, "a1")
    before = read_ticket(engine, ticket_id).assignee

    outcome = actions.assign("priya", ticket_id, "mallory", key="k1")

    assert outcome.status == "invalid"
    assert read_ticket(engine, ticket_id).assignee == before


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_given_a_ticket_when_set_pending_then_its_clock_pauses_and_reopening_resumes_it(
    desk_settings: Settings, broker, engine: Engine, actions: TicketActions  # noqa: ANN001
) -> None:
    ticket_id = open_ticket(desk_settings, broker, engine, "p1")
    actions.claim("priya", ticket_id, key="claim", now=MONDAY_10)

    pending = actions.pending("priya", ticket_id, key="p", now=MONDAY_10 + timedelta(hours=1))
    paused = read_ticket(engine, ticket_id)
    reopened = actions.reopen("priya", ticket_id, key="r", now=MONDAY_10 + timedelta(hours=3))
    resumed = read_ticket(engine, ticket_id)

    assert pending.status == "done"
    assert (paused.status, paused.sla_paused_at is not None) == ("pending", True)
    assert reopened.status == "done"
    assert (resumed.status, resumed.sla_paused_at) == ("open", None)
    assert resumed.resolution_due_at > paused.resolution_due_at


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_given_a_ticket_when_resolved_then_resolving_again_changes_nothing(
    desk_settings: Settings, broker, engine: Engine, actions: TicketActions  # noqa: ANN001
) -> None:
    ticket_id = open_ticket(desk_settings, broker, engine, "r1")

    first = actions.resolve("jonas", ticket_id, key="r1")
    second = actions.resolve("jonas", ticket_id, key="r2")

    assert (first.status, second.status) == ("done", "unchanged")
    assert read_ticket(engine, ticket_id).status == "resolved"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_given_a_reply_when_recorded_then_it_has_an_effect_to_send_and_an_empty_one_is_refused(
    desk_settings: Settings, broker, engine: Engine, actions: TicketActions  # noqa: ANN001
) -> None:
    ticket_id = open_ticket(desk_settings, broker, engine, "m1")

    reply = actions.reply("priya", ticket_id, "Here is how.", key="m1")
    note = actions.note("priya", ticket_id, "Asked the data team.", key="n1")
    empty = actions.reply("priya", ticket_id, "   ", key="e1")
    missing = actions.reply("priya", 99_999, "Hello", key="x1")

    assert reply.status == "done"
    assert reply.effects == (f"reply:{reply.message_id}",)
    assert (note.status, note.effects) == ("done", ())
    assert empty.status == "invalid"
    assert missing.status == "unknown_ticket"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_given_a_reclassification_to_the_same_type_then_it_is_unchanged_not_a_change(
    desk_settings: Settings, broker, engine: Engine, actions: TicketActions  # noqa: ANN001
) -> None:
    ticket_id = open_ticket(desk_settings, broker, engine, "t1")
    current = read_ticket(engine, ticket_id).type
    other = "policy" if current != "policy" else "tools"

    same = actions.reclassify("priya", ticket_id, "type", current, key="s1")
    changed = actions.reclassify("priya", ticket_id, "type", other, key="s2")
    unknown = actions.reclassify("priya", ticket_id, "type", "astrology", key="s3")

    assert same.status == "unchanged"
    assert (changed.status, changed.detail) == ("done", f"{current} → {other}")
    assert unknown.status == "invalid"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_given_someone_not_on_the_desk_when_they_act_then_nothing_changes_and_the_attempt_is_recorded(
    desk_settings: Settings, broker, engine: Engine, actions: TicketActions  # noqa: ANN001
) -> None:
    ticket_id = open_ticket(desk_settings, broker, engine, "f1")
    before = read_ticket(engine, ticket_id)

    with pytest.raises(Forbidden):
        actions.resolve("mallory", ticket_id, key="f1")

    after = read_ticket(engine, ticket_id)
    assert after.status == before.status
    [entry] = audit.entries(engine, outcome="refused")
    assert (entry.actor, entry.action, entry.surface, entry.target) == ("mallory", "resolve", "cli", f"HD-{ticket_id}")
