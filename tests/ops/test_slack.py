"""Slack both ways, over real HTTP: signed events and actions to `/slack/events`, the real worker, the local Slack server."""

from __future__ import annotations

import copy
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from config.settings import Settings
from ops.runtime import Runtime
from ops.web import build_app
from storage import outbox
from storage.intake_store import EVENT, MESSAGE, TICKET
from storage.models import ContactIdentity
from tests.cli import run_cli, settings_env, start_cli
from tests.factories import make_email, make_message
from tests.intake.imap_helpers import wait_for
from tests.servers.asgi import serve
from tests.servers.slack import TOKEN
from tests.slack_events import SIGNING_SECRET, SlackSender, message, sign
from tests.waiting import wait_until_drained
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
      - {{key: jonas, name: Jonas Weber, slack_user: U2, capacity: 10, working_hours: "00:00-24:00", working_days: {ALL_WEEK}}}
"""
ROUTING = "version: 1\ndefault: {team: data, priority: normal}\nrules: []\n"
SLA = "version: 1\nwarn_at: 0.75\npolicies:\n  - {name: standard, when: {}, first_response: 4h, resolution: 2d}\n"
ENQUIRER = "U9ALICE"


@pytest.fixture
def desk_files(tmp_path: Path) -> dict[str, Path]:
    files = {}
    for name, text in (("teams_file", TEAMS), ("routing_file", ROUTING), ("sla_file", SLA)):
        files[name] = tmp_path / f"{name}.yaml"
        files[name].write_text(text)
    return files


@pytest.fixture
def slack_settings(settings: Settings, slack, desk_files: dict[str, Path]) -> Settings:  # noqa: ANN001
    slack.fake.channel("#data")
    help_channel = slack.fake.channel("#help")
    slack.fake.add_user(ENQUIRER, "Alice Martin", "alice@finance.gov.uk")
    return settings.model_copy(update={
        **desk_files, "slack_bot_token": TOKEN, "slack_api_url": slack.api_url, "slack_signing_secret": SIGNING_SECRET,
        "slack_intake_channels": (help_channel,), "acknowledge": False,  # acknowledgements have tests of their own
    })


@pytest.fixture
def app(slack_settings: Settings) -> Iterator[SlackSender]:
    with Runtime(slack_settings) as runtime, serve(build_app(runtime)) as url:
        yield SlackSender(url)


def _tickets(engine: Engine) -> list[Any]:
    with engine.connect() as c:
        return c.execute(select(TICKET).order_by(TICKET.c.id)).all()


def _ticket(engine: Engine, ticket_id: int) -> Any:
    with engine.connect() as c:
        return c.execute(select(TICKET).where(TICKET.c.id == ticket_id)).one()


def _messages(engine: Engine, ticket_id: int) -> list[Any]:
    with engine.connect() as c:
        return c.execute(select(MESSAGE).where(MESSAGE.c.ticket_id == ticket_id).order_by(MESSAGE.c.id)).all()


def _events(engine: Engine, kind: str) -> list[Any]:
    with engine.connect() as c:
        return c.execute(select(EVENT).where(EVENT.c.kind == kind)).all()


def _card(slack, ticket_id: int) -> dict[str, Any]:  # noqa: ANN001
    [card] = [m for m in slack.fake.posted("#data") if "thread_ts" not in m and f"HD-{ticket_id} " in m["text"]]
    return card


def _fields(card: dict[str, Any]) -> str:
    return "\n".join(f["text"] for block in card["blocks"] if block["type"] == "section" for f in block.get("fields", []))


def _carded(engine: Engine, slack) -> Any:  # noqa: ANN001
    """Wait for the first ticket to be stored, assigned and carded."""
    wait_for(lambda: any(t.card_ts for t in _tickets(engine)), timeout=20)
    return _tickets(engine)[0]


# -- verification -----------------------------------------------------------------------
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_forged_stale_and_replayed_requests_are_refused(app: SlackSender) -> None:
    body = b'{"type": "url_verification", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}'
    now = int(time.time())
    genuine = app.raw(body, "application/json", timestamp=now)
    assert genuine.status_code == 200
    assert genuine.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
    forged = app.raw(body, "application/json", signature=sign(body, now, "not-the-secret"))
    tampered = app.raw(body.replace(b"3eZ", b"4eZ"), "application/json", timestamp=now, signature=sign(body, now))
    stale = app.raw(body, "application/json", timestamp=now - 6 * 60)
    replayed = app.raw(body, "application/json", timestamp=now, signature=sign(body, now))
    unsigned = __import__("httpx").post(app.url, content=body, headers={"Content-Type": "application/json"})
    assert [r.status_code for r in (forged, tampered, stale, replayed, unsigned)] == [401] * 5
    assert "replayed" in replayed.text
    assert "stale" in stale.text
    too_big = app.raw(b"x" * 1_100_000, "application/json")
    assert too_big.status_code == 413


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_given_malformed_timestamps_and_bodies_when_posted_then_refused_never_a_server_error(app: SlackSender) -> None:
    import httpx  # noqa: PLC0415

    body = b'{"type": "url_verification", "challenge": "c"}'
    now = int(time.time())

    def post(content: bytes, timestamp: str, signature: str) -> httpx.Response:
        return httpx.post(app.url, content=content, timeout=10, headers={
            "Content-Type": "application/json", "X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature})

    # When: a timestamp that is no number, one of 5,000 digits, and a correctly signed body that is not UTF-8
    not_a_number = post(body, "yesterday", sign(body, now))
    huge = post(body, "9" * 5000, sign(body, now))
    latin1 = "{\"type\": \"url_verification\", \"challenge\": \"caf\u00e9\"}".encode("latin-1")
    not_utf8 = post(latin1, str(now), sign(latin1, now))
    signed_form_not_utf8 = app.raw(b"payload=%7B%7D&x=\xff\xfe", "application/x-www-form-urlencoded")

    # Then
    assert [r.status_code for r in (not_a_number, huge, not_utf8, signed_form_not_utf8)] == [401, 401, 401, 401]
    assert "malformed timestamp" in not_a_number.text
    assert "malformed timestamp" in huge.text
    assert "malformed body" in not_utf8.text


# -- the loop -----------------------------------------------------------------------------
def test_slack_enquiry_becomes_one_ticket_with_a_card_and_joined_contact(
    slack_settings: Settings, app: SlackSender, running_worker, engine: Engine, slack,  # noqa: ANN001
) -> None:
    help_channel = slack.fake.channel("#help")
    with running_worker(engine, slack_settings) as services:
        # Alice wrote by e-mail before; now she asks in the community channel
        services.pipeline.process(make_message("mail-1", sender="alice@finance.gov.uk", name="Alice Martin", subject="Earlier question"), "d-mail-1")
        first = message(help_channel, ENQUIRER, "Our <https://data.example/tender|tender feed> fails validation: ocid missing?")
        assert app.event(first, event_id="Ev-first").status_code == 200
        assert app.event(first, event_id="Ev-first", retry=1).status_code == 200  # Slack's retry: accepted, done once
        assert app.event(message(help_channel, "UBOT", "our own post", bot_id="BBOT")).status_code == 200
        assert app.event(message(help_channel, ENQUIRER, "joined", subtype="channel_join")).status_code == 200
        wait_for(lambda: len(_tickets(engine)) == 2 and _tickets(engine)[1].card_ts is not None, timeout=20)
        ticket = _tickets(engine)[1]
        # her follow-up in the same Slack thread joins the ticket
        app.event(message(help_channel, ENQUIRER, "Also: which schema version?", thread_ts=first["ts"]))
        wait_for(lambda: len(_messages(engine, ticket.id)) == 2, timeout=20)
        # she edits her first message
        app.event({"type": "message", "subtype": "message_changed", "channel": help_channel, "event_ts": f"{time.time():.6f}",
                   "message": {"type": "message", "user": ENQUIRER, "ts": first["ts"], "text": "Edited: ocid missing in release"}})
        wait_for(lambda: _messages(engine, ticket.id)[0].edited_at is not None, timeout=20)
    assert len(_tickets(engine)) == 2, "a retried event and bot or join messages open no tickets"
    first_message, follow_up = _messages(engine, ticket.id)
    assert first_message.channel == "slack"
    assert first_message.external_id == f"{help_channel}:{first['ts']}"
    assert first_message.text == "Edited: ocid missing in release"
    assert len(_events(engine, "message_edited")) == 1
    assert follow_up.text == "Also: which schema version?"
    with engine.connect() as c:
        identities = {(r.channel, r.address): r.contact_id for r in c.execute(select(ContactIdentity.__table__))}
    assert identities[("slack", ENQUIRER)] == identities[("email", "alice@finance.gov.uk")] == ticket.contact_id
    card = _card(slack, ticket.id)
    fields = _fields(card)
    assert f"Alice Martin <@{ENQUIRER}>" in fields
    assert "*Organisation:* finance.gov.uk" in fields
    assert "*Channel:* slack" in fields
    assert "tender feed (https://data.example/tender)" in str(card["blocks"])  # the summary, as text
    assert {e["action_id"] for e in card["blocks"][-1]["elements"]} == {"claim", "assign", "reclassify_type", "reclassify_sector", "resolve", "canned"}


def _open(services: Any, broker: Any, external_id: str, sender: str) -> int:  # noqa: ANN401
    """An e-mail ticket, as the intake actor would leave it: stored, its effects queued."""
    outcome = services.pipeline.process(make_message(external_id, sender=sender), f"d-{external_id}")
    for key in outcome.effects:
        enqueue_effect(broker, key)
    return outcome.ticket_id


def test_claim_assign_reclassify_resolve_update_ticket_and_card(
    slack_settings: Settings, app: SlackSender, running_worker, broker, engine: Engine, slack,  # noqa: ANN001
) -> None:
    with running_worker(engine, slack_settings) as services:
        _open(services, broker, "m1", "bob@finance.gov.uk")
        ticket = _carded(engine, slack)
        value = str(ticket.id)
        updates = lambda: len(slack.fake.method_calls("chat.update"))  # noqa: E731

        app.action("U2", {"action_id": "claim", "type": "button", "value": value})
        wait_for(lambda: _ticket(engine, ticket.id).assignee == "jonas" and updates() >= 1, timeout=20)
        assert "<@U2>" in _fields(_card(slack, ticket.id))

        app.action("U2", {"action_id": "assign", "type": "static_select", "selected_option": {"value": f"{value}:priya"}})
        wait_for(lambda: _ticket(engine, ticket.id).assignee == "priya" and updates() >= 2, timeout=20)
        assert "<@U1>" in _fields(_card(slack, ticket.id))

        app.action("U1", {"action_id": "reclassify_type", "type": "static_select", "selected_option": {"value": f"{value}:policy"}})
        app.action("U1", {"action_id": "reclassify_sector", "type": "static_select", "selected_option": {"value": f"{value}:academia"}})
        app.action("U1", {"action_id": "reclassify_type", "type": "static_select", "selected_option": {"value": f"{value}:no-such-type"}})
        wait_for(lambda: (_ticket(engine, ticket.id).type, _ticket(engine, ticket.id).sector) == ("policy", "academia")
                 and updates() >= 4, timeout=20)

        app.action("U1", {"action_id": "resolve", "type": "button", "value": value})
        # the card itself is waited for: an extra update of an earlier action may also count
        wait_for(lambda: _ticket(engine, ticket.id).status == "resolved" and "✅ resolved" in _fields(_card(slack, ticket.id)), timeout=20)
        resolved_card = copy.deepcopy(_card(slack, ticket.id))
        app.action("U1", {"action_id": "reopen", "type": "button", "value": value})
        wait_for(lambda: _ticket(engine, ticket.id).status == "open" and updates() >= 6, timeout=20)
    fields = _fields(resolved_card)
    assert "policy (100%)" in fields
    assert "academia (100%)" in fields
    assert "✅ resolved" in fields
    assert "reopen" in {e["action_id"] for e in resolved_card["blocks"][-1]["elements"]}
    assert len(slack.fake.posted("#data")) == 1, "actions update the one card in place"
    assert (_events(engine, "reassigned")[-1].data["member"], _events(engine, "reassigned")[-1].data["by"]) == ("priya", "jonas")
    assert sorted(e.data["to"] for e in _events(engine, "reclassified")) == ["academia", "policy"]
    assert len(_events(engine, "resolved")) == 1
    assert len(_events(engine, "reopened")) == 1
    assert _ticket(engine, ticket.id).reopened_count == 1


def test_replies_from_the_card_thread_reach_the_enquirer(
    slack_settings: Settings, app: SlackSender, running_worker, broker, engine: Engine, slack,  # noqa: ANN001
) -> None:
    help_channel = slack.fake.channel("#help")
    with running_worker(engine, slack_settings) as services:
        question = message(help_channel, ENQUIRER, "How do I publish amendments?")
        app.event(question)
        ticket = _carded(engine, slack)
        card_ts = ticket.card_ts
        app.event(message(slack.fake.channel("#data"), "U1", "note: she asked last month too", thread_ts=card_ts))
        app.event(message(slack.fake.channel("#data"), "U1", "Use the amendment array, see the docs.", thread_ts=card_ts))
        app.event(message(slack.fake.channel("#data"), "U7STRANGER", "+1", thread_ts=card_ts))  # not on the desk: nothing
        wait_for(lambda: any(m.get("thread_ts") == question["ts"] for m in slack.fake.posted(help_channel)), timeout=20)
        # an e-mail enquiry: the reply is stored, queued for the e-mail sender
        mail_ticket = _open(services, broker, "mail-2", "carol@finance.gov.uk")
        wait_for(lambda: _ticket(engine, mail_ticket).card_ts is not None, timeout=20)
        app.event(message(slack.fake.channel("#data"), "U2", "We will look at your file.", thread_ts=_ticket(engine, mail_ticket).card_ts))
        wait_for(lambda: len(_messages(engine, mail_ticket)) == 2, timeout=20)
    [answer] = [m for m in slack.fake.posted(help_channel) if m.get("thread_ts") == question["ts"]]
    assert answer["text"] == "Use the amendment array, see the docs."
    by_kind = {m.kind: m for m in _messages(engine, ticket.id)}  # (the two staff messages were handled concurrently)
    note, reply = by_kind["note"], by_kind["reply"]
    assert len(_messages(engine, ticket.id)) == 3
    assert (note.kind, note.status, note.author, note.text) == ("note", None, "priya", "she asked last month too")
    assert (reply.direction, reply.kind, reply.status, reply.channel) == ("out", "reply", "sent", "slack")
    slack_ticket = _ticket(engine, ticket.id)
    assert slack_ticket.first_response_at is not None
    assert slack_ticket.first_response_seconds is not None
    email_reply = _messages(engine, mail_ticket)[1]
    assert (email_reply.direction, email_reply.channel, email_reply.status, email_reply.author) == ("out", "email", "queued", "jonas")
    assert outbox.get(engine, f"reply:{email_reply.id}") is not None
    assert len(slack.fake.posted(help_channel)) == 1, "the note and the stranger's message stayed inside"


def test_slash_command_lists_and_resolves(
    slack_settings: Settings, app: SlackSender, running_worker, broker, engine: Engine, slack,  # noqa: ANN001
) -> None:
    with running_worker(engine, slack_settings) as services:
        first = _open(services, broker, "s1", "dan@finance.gov.uk")
        wait_for(lambda: _ticket(engine, first).card_ts is not None, timeout=20)
        owner = {"priya": "U1", "jonas": "U2"}[_ticket(engine, first).assignee]
        mine = app.command(owner, "mine").json()
        assert mine["response_type"] == "ephemeral"
        assert f"HD-{first}" in mine["text"]
        assert "overdue since" in mine["text"]
        assert "Nothing assigned" in app.command({"U1": "U2", "U2": "U1"}[owner], "mine").json()["text"]
        assert "No unassigned" in app.command(owner, "queue").json()["text"]
        assert "Only members" in app.command("U7STRANGER", "mine").json()["text"]
        assert "Usage" in app.command(owner, "").json()["text"]
        assert "not a ticket number" in app.command(owner, "resolve XY-1").json()["text"]
        assert "There is no HD-999" in app.command(owner, "resolve HD-999").json()["text"]
        assert app.command(owner, f"resolve hd-{first}").json()["text"] == f"✅ HD-{first} resolved."
        assert "already resolved" in app.command(owner, f"resolve HD-{first}").json()["text"]
        wait_for(lambda: "✅ resolved" in _fields(_card(slack, first)), timeout=20)
    assert _ticket(engine, first).status == "resolved"
    assert len(_events(engine, "resolved")) == 1


def test_rate_limited_card_is_retried_later_and_posted_once(
    slack_settings: Settings, running_worker, broker, engine: Engine, slack,  # noqa: ANN001
) -> None:
    # Given Slack answers the first card with a rate limit (429, Retry-After: 2)
    slack.fake.inject("chat.postMessage", "ratelimit", 1, 2)
    with running_worker(engine, slack_settings) as services:
        # When a ticket is opened
        started = time.monotonic()
        ticket_id = _open(services, broker, "r1", "erin@finance.gov.uk")
        waited = wait_for(lambda: _ticket(engine, ticket_id).card_ts is not None, timeout=30)
        wait_until_drained(broker)
    # Then one card is posted, on the second attempt, after Slack's Retry-After
    assert len(slack.fake.posted("#data")) == 1
    [card_row] = [r for r in _outbox(engine) if r["kind"] == "slack_card"]
    assert card_row["status"] == "done"
    assert card_row["attempts"] == 2
    assert time.monotonic() - started >= waited >= 2.0, "the retry waited for Slack's Retry-After"


def _process_env(s: Settings, **extra: object) -> dict[str, str]:
    """The environment of a `helpdesk` process of this test (its namespace, database, desk and local Slack)."""
    return settings_env(s, teams_file=s.teams_file, routing_file=s.routing_file, sla_file=s.sla_file,
                        slack_bot_token=TOKEN, slack_api_url=s.slack_api_url, **extra)


def _outbox(engine: Engine) -> list[dict[str, Any]]:
    from storage.models import Outbox

    with engine.connect() as c:
        return [dict(r._mapping) for r in c.execute(select(Outbox.__table__))]


def test_worker_killed_between_post_and_db_write_posts_one_card(
    slack_settings: Settings, slack, tmp_path: Path, engine: Engine,  # noqa: ANN001
) -> None:
    env = _process_env(slack_settings, slack_signing_secret=SIGNING_SECRET, heartbeat_timeout_seconds=2, effect_lease_seconds=2)
    (tmp_path / "mail").mkdir()
    (tmp_path / "mail" / "k.eml").write_bytes(make_email(sender="Kim <kim@finance.gov.uk>", message_id="<kill@finance.gov.uk>"))
    run_cli(["import", str(tmp_path / "mail")], env)
    slack.fake.inject("chat.postMessage", "hang", 1, 60)  # Slack posts the card; its answer never comes back
    victim = start_cli(["worker"], env)
    try:
        wait_for(lambda: len(slack.fake.posted("#data")) == 1, timeout=60)
        time.sleep(0.3)
        [card_row] = [r for r in _outbox(engine) if r["kind"] == "slack_card"]
        assert card_row["status"] == "in_progress", "the card is posted but not yet recorded"
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
    time.sleep(2.5)  # the dead worker's heartbeat and its lease on the card both run out
    run_cli(["worker", "--until-idle"], env, timeout=120)
    [card] = slack.fake.posted("#data")
    [ticket] = _tickets(engine)
    [card_row] = [r for r in _outbox(engine) if r["kind"] == "slack_card"]
    assert ticket.card_ts == card["ts"]
    assert card_row["status"] == "done"
    assert card_row["attempts"] == 2
    assert card_row["result"]["found_existing"] is True


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_socket_mode_carries_events_actions_and_commands(
    slack_settings: Settings, running_worker, engine: Engine, slack, slack_socket,  # noqa: ANN001
) -> None:
    from tests.servers.slack import APP_TOKEN

    env = _process_env(slack_settings, slack_app_token=APP_TOKEN)
    help_channel = slack.fake.channel("#help")
    socket_server = slack_socket  # handed out by apps.connections.open on the local Slack server
    with running_worker(engine, slack_settings):
        adapter = start_cli(["slack", "socket"], env)
        try:
            question = message(help_channel, ENQUIRER, "Is there a validator for releases?")
            event = socket_server.send("events_api", {"type": "event_callback", "event_id": "EvSock1", "event": question})
            assert socket_server.ack(event, timeout=30) == {"envelope_id": event}
            ticket = _carded(engine, slack)
            claim = socket_server.send("interactive", {"type": "block_actions", "user": {"id": "U2"},
                                                       "actions": [{"action_id": "claim", "value": str(ticket.id), "action_ts": "1.5"}]})
            socket_server.ack(claim)
            wait_for(lambda: _ticket(engine, ticket.id).assignee == "jonas", timeout=20)
            command = socket_server.send("slash_commands", {"command": "/helpdesk", "text": "mine", "user_id": "U2"},
                                         accepts_response_payload=True)
            answer = socket_server.ack(command)
        finally:
            adapter.send_signal(signal.SIGTERM)
            adapter.wait(timeout=30)
    assert f"HD-{ticket.id}" in answer["payload"]["text"]
    assert adapter.returncode == 0, adapter.stderr.read() if adapter.stderr else ""
    assert len(_tickets(engine)) == 1


def _quarantined(engine: Engine) -> list[Any]:
    from storage.intake_store import QUARANTINE

    with engine.connect() as c:
        return c.execute(select(QUARANTINE)).all()


def test_an_event_that_cannot_become_a_message_is_quarantined_and_intake_goes_on(
    slack_settings: Settings, app: SlackSender, running_worker, engine: Engine, slack,  # noqa: ANN001
) -> None:
    help_channel = slack.fake.channel("#help")
    # Given bodies that are signed but not the documented shape: refused with 400 (which Slack does not retry), never a 500
    assert app.raw(b"[1, 2, 3]", "application/json").status_code == 400
    assert app.raw(b'{"type": "event_callback", "event": ["not", "an", "object"]}', "application/json").status_code == 400
    with running_worker(engine, slack_settings):
        # When a genuine event arrives whose message cannot be converted (a timestamp that is no number), then a good one
        broken = message(help_channel, ENQUIRER, "Where is the codelist for tender status?", ts="not-a-time",
                         event_ts=f"{time.time():.6f}")
        assert app.event(broken, event_id="Ev-broken").status_code == 200
        good = message(help_channel, ENQUIRER, "Is the ocid prefix registered for every publisher?")
        assert app.event(good, event_id="Ev-good").status_code == 200
        # Then the broken one is quarantined at once (no retries) with its reason, and the good one becomes a ticket
        wait_for(lambda: len(_tickets(engine)) == 1, timeout=20)
        wait_for(lambda: len(_quarantined(engine)) == 1, timeout=20)
        [row] = _quarantined(engine)
    assert row.kind == "dead_letter"
    assert row.queue == "slack"
    assert "MessageDecodeError" in row.reason
    assert "cannot become a message: ValueError" in row.detail
    assert _messages(engine, _tickets(engine)[0].id)[0].external_id == f"{help_channel}:{good['ts']}"
