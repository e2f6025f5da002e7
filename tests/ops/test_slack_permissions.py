"""Only the desk's people act on cards, each within their roles; a refused action changes nothing and is recorded."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import Engine, select

from config.settings import Settings
from ops.runtime import Runtime
from ops.web import build_app
from storage import audit
from storage.corrections import training_corrections
from storage.intake_store import TICKET
from tests.factories import make_message
from tests.intake.imap_helpers import wait_for
from tests.servers.asgi import serve
from tests.servers.slack import TOKEN
from tests.slack_events import SIGNING_SECRET, SlackSender
from config.queues import enqueue_effect

pytestmark = pytest.mark.slow

ALL_WEEK = "[mon, tue, wed, thu, fri, sat, sun]"
TEAMS = f"""
version: 1
teams:
  data:
    name: Data
    slack_channel: "#data"
    strategy: round_robin
    calendar: {{timezone: UTC}}
    members:
      - {{key: priya, name: Priya Nair, slack_user: U1, capacity: 10, working_hours: "00:00-24:00", working_days: {ALL_WEEK}, lead: true}}
staff:
  - {{key: maria, name: Maria Lopez, slack_user: U5MANAGER, roles: [manager]}}
"""
ROUTING = "version: 1\ndefault: {team: data, priority: normal}\nrules: []\n"
SLA = "version: 1\nwarn_at: 0.75\npolicies:\n  - {name: standard, when: {}, first_response: 4h, resolution: 2d}\n"


@pytest.fixture
def slack_settings(settings: Settings, slack, tmp_path: Path) -> Settings:  # noqa: ANN001
    files = {}
    for name, text in (("teams_file", TEAMS), ("routing_file", ROUTING), ("sla_file", SLA)):
        files[name] = tmp_path / f"{name}.yaml"
        files[name].write_text(text)
    slack.fake.channel("#data")
    return settings.model_copy(update={**files, "slack_bot_token": TOKEN, "slack_api_url": slack.api_url,
                                       "slack_signing_secret": SIGNING_SECRET, "acknowledge": False})


@pytest.fixture
def app(slack_settings: Settings) -> Iterator[SlackSender]:
    with Runtime(slack_settings) as runtime, serve(build_app(runtime)) as url:
        yield SlackSender(url)


def _act(app: SlackSender, user: str, channel: str, action: dict[str, Any]) -> None:
    action = {"block_id": "b", "action_ts": f"{time.time():.6f}", **action}
    payload = {"type": "block_actions", "user": {"id": user}, "channel": {"id": channel}, "actions": [action],
               "container": {"type": "message", "channel_id": channel}}
    response = app.raw(urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded")
    assert response.status_code == 200


def _ticket(engine: Engine, ticket_id: int) -> Any:
    with engine.connect() as c:
        return c.execute(select(TICKET).where(TICKET.c.id == ticket_id)).one()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_stranger_and_a_manager_change_nothing_on_a_card(
    slack_settings: Settings, app: SlackSender, running_worker, broker, engine: Engine, slack,  # noqa: ANN001
) -> None:
    channel = slack.fake.channel("#data")
    with running_worker(engine, slack_settings) as services:
        # Given a ticket on the desk
        outcome = services.pipeline.process(make_message("p1", sender="bob@finance.gov.uk"), "d-p1")
        for key in outcome.effects:
            enqueue_effect(broker, key)
        ticket_id = outcome.ticket_id
        wait_for(lambda: _ticket(engine, ticket_id).card_ts is not None, timeout=20)
        before = _ticket(engine, ticket_id)
        # When a correctly signed stranger resolves, reclassifies and assigns it, and a manager claims it
        value = str(ticket_id)
        _act(app, "U7STRANGER", channel, {"action_id": "resolve", "type": "button", "value": value})
        _act(app, "U7STRANGER", channel, {"action_id": "reclassify_type", "type": "static_select",
                                          "selected_option": {"value": f"{value}:policy"}})
        _act(app, "U7STRANGER", channel, {"action_id": "assign", "type": "static_select", "selected_option": {"value": f"{value}:priya"}})
        _act(app, "U5MANAGER", channel, {"action_id": "claim", "type": "button", "value": value})
        wait_for(lambda: len(audit.entries(engine, outcome="refused")) == 4, timeout=20)
        wait_for(lambda: len(slack.fake.method_calls("chat.postEphemeral")) == 4, timeout=20)
    # Then the ticket is as it was, no correction became training data, and every attempt is recorded with who tried
    after = _ticket(engine, ticket_id)
    assert (after.status, after.type, after.assignee) == (before.status, before.type, before.assignee)
    with engine.connect() as c:
        assert training_corrections(c) == []
    refused = audit.entries(engine, outcome="refused")
    assert sorted(e.actor for e in refused) == ["U7STRANGER", "U7STRANGER", "U7STRANGER", "maria"]  # a person of the desk by key
    assert {e.action for e in refused} == {"resolve", "reclassify", "assign", "claim"}
    told = slack.fake.method_calls("chat.postEphemeral")
    assert {c["user"] for c in told} == {"U7STRANGER", "U5MANAGER"}
    assert all(c["text"].startswith("Not done:") for c in told)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_author_who_edits_or_deletes_takes_their_words_back(
    slack_settings: Settings, app: SlackSender, running_worker, engine: Engine, slack,  # noqa: ANN001
) -> None:
    from storage.intake_store import EVENT, MESSAGE  # noqa: PLC0415
    from tests.slack_events import message  # noqa: PLC0415

    help_channel = slack.fake.channel("#help")
    slack.fake.add_user("U9ALICE", "Alice Martin", "alice@finance.gov.uk")
    settings = slack_settings.model_copy(update={"slack_intake_channels": (help_channel,)})
    with running_worker(engine, settings):
        first = message(help_channel, "U9ALICE", "My phone number is +44 20 7946 0000, please call")
        second = message(help_channel, "U9ALICE", "Secret: our draft tender plan", thread_ts=first["ts"])
        app.event(first)
        wait_for(lambda: _messages(engine, MESSAGE) == 1, timeout=20)
        app.event(second)
        wait_for(lambda: _messages(engine, MESSAGE) == 2, timeout=20)
        app.event({"type": "message", "subtype": "message_changed", "channel": help_channel, "event_ts": f"{time.time():.6f}",
                   "message": {"type": "message", "user": "U9ALICE", "ts": first["ts"], "text": "Please call me"}})
        app.event({"type": "message", "subtype": "message_deleted", "channel": help_channel, "deleted_ts": second["ts"],
                   "event_ts": f"{time.time():.6f}"})
        wait_for(lambda: _stored(engine, MESSAGE, f"{help_channel}:{second['ts']}").deleted_at is not None, timeout=20)
        wait_for(lambda: _stored(engine, MESSAGE, f"{help_channel}:{first['ts']}").edited_at is not None, timeout=20)
    assert _stored(engine, MESSAGE, f"{help_channel}:{first['ts']}").text == "Please call me"
    assert _stored(engine, MESSAGE, f"{help_channel}:{second['ts']}").text == ""
    with engine.connect() as c:
        kept = " ".join(str(r.data) for r in c.execute(select(EVENT)))
    assert "7946" not in kept, "no copy of the words before an edit"
    assert "draft tender" not in kept


def _messages(engine: Engine, table: Any) -> int:
    from sqlalchemy import func  # noqa: PLC0415

    with engine.connect() as c:
        return c.execute(select(func.count()).select_from(table)).scalar_one()


def _stored(engine: Engine, table: Any, external_id: str) -> Any:
    with engine.connect() as c:
        return c.execute(select(table).where(table.c.external_id == external_id)).one()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_org_command_shows_stage_tickets_and_engagements(slack_settings: Settings, app: SlackSender, engine: Engine) -> None:
    from config.desk import load_desk  # noqa: PLC0415
    from workers.desk.knowledge import Knowledge  # noqa: PLC0415

    knowledge = Knowledge(engine, load_desk(slack_settings))
    knowledge.set_organisation("hacienda.gob.mx", by="priya", name="Secretaría de Hacienda", standard="ocds", stage="publishing")
    knowledge.add_engagement("hacienda.gob.mx", "training", by="priya", hours=3)
    answer = app.command("U1", "org hacienda.gob.mx").json()
    assert answer["response_type"] == "ephemeral"
    shown = json.dumps(answer["blocks"], ensure_ascii=False)
    assert "ocds *publishing*" in shown
    assert "training — requested, 3 h" in shown
    assert "no organisation" in app.command("U1", "org nowhere.example").json()["text"]
    assert "Only members" in app.command("U7STRANGER", "org hacienda.gob.mx").json()["text"]
