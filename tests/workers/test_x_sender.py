"""Replies on X through the outbox (Effects) and XSender, against the local X server over real HTTP."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import Engine, select

from config.settings import Settings
from intake.base import MemorySink
from intake.queue import InflightRegistry, QueueSink
from intake.state import AdapterHealth, MemoryCheckpointStore
from intake.x import DMS, MENTIONS, XAdapter
from intake.x_api import XAccount, XApi
from storage import outbox
from storage.intake_store import MESSAGE, TICKET
from storage.models import utcnow
from tests.intake.imap_helpers import wait_for
from tests.servers.x import ANA, BEN, ACCESS_TOKEN, ACCESS_TOKEN_SECRET, ACCOUNT_ID, BEARER_TOKEN, CONSUMER_KEY, CONSUMER_SECRET, XServer, weighted_length
from config.queues import enqueue_effect
from workers.services import Services, build_services
from workers.desk.operations import add_staff_message
from workers.outbound.x_sender import XSender, split_thread
from workers.errors import XRateLimitedSend
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def x_settings(settings: Settings, server: XServer, **extra: Any) -> Settings:
    return settings.model_copy(update={
        "x_bearer_token": BEARER_TOKEN, "x_consumer_key": CONSUMER_KEY, "x_consumer_secret": CONSUMER_SECRET,
        "x_access_token": ACCESS_TOKEN, "x_access_token_secret": ACCESS_TOKEN_SECRET, "x_account_id": ACCOUNT_ID,
        "x_api_url": server.url, "x_timeout_seconds": 2, "acknowledge": False, **extra,
    })


@pytest.fixture
def services(x: XServer, settings: Settings, broker, engine: Engine) -> Services:  # noqa: ANN001
    """The worker's services (no worker threads: effects are run by the test), with the X sender registered."""
    built = build_services(x_settings(settings, x), broker, engine)
    sender = XSender.from_settings(engine, x_settings(settings, x))
    assert sender is not None
    built.effects.senders["x"] = sender
    return built


def adapter(server: XServer, sink: Any) -> XAdapter:
    account = XAccount(ACCOUNT_ID, BEARER_TOKEN, CONSUMER_KEY, CONSUMER_SECRET, ACCESS_TOKEN, ACCESS_TOKEN_SECRET,
                       api_url=server.url, timeout=2.0)
    return XAdapter(account, sink, MemoryCheckpointStore(), AdapterHealth(None, ""), api=XApi(account), backfill=True)


def receive(server: XServer, services: Services) -> int:
    """Poll X once and store what arrived (as the worker would); the id of the last ticket touched."""
    sink = MemorySink()
    reader = adapter(server, sink)
    for stream in (MENTIONS, DMS):
        assert reader.poll(stream).error is None
    outcomes = [services.pipeline.process(m, f"delivery-{m.external_id}") for m in sink.messages]
    return outcomes[-1].ticket_id  # type: ignore[return-value]


def reply(engine: Engine, ticket_id: int, text: str) -> tuple[int, str]:
    now = utcnow()
    message_id, effect = add_staff_message(engine, ticket_id, text, now, author="priya", key=f"test:{now.isoformat()}", note=False)
    assert message_id is not None
    assert effect is not None
    return message_id, effect


def message_row(engine: Engine, message_id: int) -> Any:
    with engine.connect() as c:
        return c.execute(select(MESSAGE).where(MESSAGE.c.id == message_id)).one()


# -- DMs ------------------------------------------------------------------------------------------
def test_a_reply_goes_once_as_a_dm_to_the_enquirer(x: XServer, services: Services, engine: Engine) -> None:
    # Given a ticket opened by a mention
    x.fake.mention(ANA, "Our publication fails validation on tender/value, can you help?")
    ticket = receive(x, services)

    # When staff reply, and the effect is run twice
    message_id, effect = reply(engine, ticket, "Hello Ana, please send us the file and the validator's output.")
    result = services.effects.run(effect)
    assert services.effects.run(effect) is None

    # Then one DM went to Ana, and the message records its X ids and DM thread
    [dm] = x.fake.sent_dms()
    assert dm["participant_ids"] == [ACCOUNT_ID, ANA]
    assert dm["text"].startswith("Hello Ana")
    assert result.facts["route"] == "dm"
    assert result.facts["found_existing"] is False
    row = message_row(engine, message_id)
    assert row.status == "sent"
    assert row.message_id == f"dm:{dm['id']}"
    assert row.thread_key == f"dm:{dm['dm_conversation_id']}"
    assert x.fake.sent_tweets() == []


def test_a_dm_retried_after_a_dropped_answer_is_not_sent_twice(x: XServer, services: Services, engine: Engine) -> None:
    # Given a ticket, and a server that sends the next DM but drops the connection before answering
    x.fake.dm(ANA, "Where do I register a publisher prefix?")
    ticket = receive(x, services)
    x.fake.inject("create_dm", "drop")
    message_id, effect = reply(engine, ticket, "You can request one at the registry: https://example.org/prefix")

    # When the first attempt fails with an unknown outcome and the outbox row is retried
    with pytest.raises(Exception, match="create_direct_message"):
        services.effects.run(effect)
    assert message_row(engine, message_id).status == "sending"
    assert len(x.fake.sent_dms()) == 1
    result = services.effects.run(effect)

    # Then the retry found the DM that went out and sent nothing more
    assert result.facts["found_existing"] is True
    assert len(x.fake.sent_dms()) == 1
    assert len(x.fake.endpoint_calls("create_dm")) == 1
    assert message_row(engine, message_id).status == "sent"


def test_a_rate_limited_send_is_retried_later_without_sleeping(x: XServer, services: Services, engine: Engine) -> None:
    x.fake.dm(ANA, "Is there a template for the data protection notice?")
    ticket = receive(x, services)
    x.fake.inject("create_dm", "ratelimit", value=120)
    _, effect = reply(engine, ticket, "Yes: see the guidance page on data protection.")

    started = time.monotonic()
    with pytest.raises(XRateLimitedSend) as limited:
        services.effects.run(effect)
    assert time.monotonic() - started < 1.5
    assert 100 < limited.value.retry_after <= 121
    assert outbox.get(engine, effect)["status"] == "pending"

    services.effects.run(effect)
    assert len(x.fake.sent_dms()) == 1


def test_a_dm_x_refuses_fails_the_reply_with_the_reason(x: XServer, services: Services, engine: Engine) -> None:
    x.fake.dm(ANA, "Hello?")
    ticket = receive(x, services)
    with engine.begin() as c:  # the enquirer's account is gone: X refuses DMs to it
        c.execute(MESSAGE.update().where(MESSAGE.c.ticket_id == ticket).values(sender_address="9999"))
    message_id, effect = reply(engine, ticket, "Hello!")

    result = services.effects.run(effect)

    assert result.outcome == "failed"
    assert "403" in result.detail
    assert "cannot send messages" in result.detail
    assert message_row(engine, message_id).status == "failed"
    assert x.fake.sent_dms() == []


# -- reply tweets -------------------------------------------------------------------------------------
def test_a_public_reply_answers_the_enquirers_latest_tweet(x: XServer, services: Services, engine: Engine) -> None:
    # Given a ticket of two tweets by Ana (the second answering the first)
    first = x.fake.mention(ANA, "Which codelist covers award status?")
    receive(x, services)
    latest = x.fake.mention(ANA, "For version 1.1, I mean", reply_to=first)
    ticket = receive(x, services)

    # When staff reply with "public:"
    message_id, effect = reply(engine, ticket, "public: It is awardStatus: https://example.org/codelists#award-status")
    result = services.effects.run(effect)

    # Then one reply tweet answers Ana's latest tweet, without the prefix, in her conversation
    [tweet] = x.fake.sent_tweets()
    assert tweet["text"] == "It is awardStatus: https://example.org/codelists#award-status"
    assert tweet["referenced_tweets"] == [{"type": "replied_to", "id": latest}]
    assert tweet["conversation_id"] == first
    assert result.facts["tweet_ids"] == [tweet["id"]]
    assert x.fake.sent_dms() == []
    row = message_row(engine, message_id)
    assert row.message_id == f"tweet:{tweet['id']}"
    assert row.thread_key == f"tweet-conversation:{first}"


def test_a_long_public_reply_becomes_a_numbered_thread_and_resumes_after_a_drop(x: XServer, services: Services, engine: Engine) -> None:
    # Given a mention, and a server that posts the second tweet but drops its answer
    mention = x.fake.mention(ANA, "How do we model framework agreements?")
    ticket = receive(x, services)
    text = "public: " + " ".join(f"Step {i}: read the framework agreements guidance, section {i}, then map your fields." for i in range(9))
    parts = split_thread(text[len("public: "):])
    assert parts is not None
    assert len(parts) == 3
    x.fake.inject("create_tweet", "drop", after=1)
    message_id, effect = reply(engine, ticket, text)

    # When the first attempt dies on the second tweet and the row is retried
    with pytest.raises(Exception, match="create_tweet"):
        services.effects.run(effect)
    result = services.effects.run(effect)

    # Then three tweets went out, once each, chained under Ana's mention and numbered
    tweets = x.fake.sent_tweets()
    assert [t["text"] for t in tweets] == parts
    assert [t["text"][-5:] for t in tweets] == ["(1/3)", "(2/3)", "(3/3)"]
    assert [t["referenced_tweets"][0]["id"] for t in tweets] == [mention, tweets[0]["id"], tweets[1]["id"]]
    assert all(weighted_length(t["text"]) <= 280 for t in tweets)
    assert result.facts["found_existing"] == 2
    assert len(x.fake.endpoint_calls("create_tweet")) == 3
    assert message_row(engine, message_id).refs == [f"tweet:{t['id']}" for t in tweets]


def test_a_public_reply_too_long_or_without_a_tweet_is_refused(x: XServer, services: Services, engine: Engine) -> None:
    x.fake.mention(ANA, "A question in public")
    ticket = receive(x, services)
    message_id, effect = reply(engine, ticket, "public: " + "x" * 2000)
    assert "shorten it" in services.effects.run(effect).detail
    assert message_row(engine, message_id).status == "failed"

    x.fake.dm(BEN, "A question in private")
    dm_ticket = receive(x, services)
    _, effect = reply(engine, dm_ticket, "public: an answer")
    assert "no tweet" in services.effects.run(effect).detail
    assert x.fake.sent_tweets() == []
    assert x.fake.sent_dms() == []


def test_an_acknowledgement_answers_the_way_the_enquiry_came(x: XServer, services: Services, engine: Engine) -> None:
    # Given a ticket opened by a mention and one opened by a DM
    mention = x.fake.mention(ANA, "Is there a validator for 1.1?")
    by_mention = receive(x, services)
    x.fake.dm(BEN, "Is there a validator for 1.0?")
    by_dm = receive(x, services)

    # When each is acknowledged
    for ticket in (by_mention, by_dm):
        now = utcnow()
        _, effect = add_staff_message(engine, ticket, f"Thanks! Your enquiry is HD-{ticket}.", now, author="helpdesk",
                                      key=f"ack:{ticket}", note=False, kind="acknowledgement")
        services.effects.run(effect)  # type: ignore[arg-type]

    # Then the mention got a reply tweet (its author may not accept our DMs) and the DM a DM
    [tweet] = x.fake.sent_tweets()
    assert tweet["referenced_tweets"][0]["id"] == mention
    assert tweet["text"] == f"Thanks! Your enquiry is HD-{by_mention}."
    [dm] = x.fake.sent_dms()
    assert dm["participant_ids"] == [ACCOUNT_ID, BEN]


def test_without_user_context_keys_there_is_no_sender(settings: Settings, engine: Engine, x: XServer) -> None:
    assert XSender.from_settings(engine, x_settings(settings, x, x_access_token=None)) is None
    assert XSender.from_settings(engine, x_settings(settings, x, x_account_id=None)) is None


# -- end to end ---------------------------------------------------------------------------------------
def test_mention_to_ticket_to_reply_through_the_workers(x: XServer, settings: Settings, broker, engine: Engine, running_worker) -> None:  # noqa: ANN001
    # Given the real worker with the X sender, and an adapter queueing onto its broker
    configured = x_settings(settings, x)
    sink = QueueSink(broker, InflightRegistry(broker.client, configured.redis_namespace))
    reader = adapter(x, sink)
    mention = x.fake.mention(ANA, "Can you review our OCDS mapping before we publish?")
    with running_worker(engine, configured) as services:
        services.effects.senders["x"] = XSender.from_settings(engine, configured)
        # When the mention is polled and becomes a ticket
        assert reader.poll(MENTIONS).enqueued == 1
        wait_for(lambda: _tickets(engine) == 1, timeout=20)
        with engine.connect() as c:
            ticket = c.execute(select(TICKET.c.id)).scalar_one()

        # And staff reply in public while the server drops its first answer (the worker retries)
        x.fake.inject("create_tweet", "drop")
        message_id, effect = reply(engine, ticket, "public: Yes, send it over and we will review it this week.")
        enqueue_effect(broker, effect)
        wait_for(lambda: message_row(engine, message_id).status == "sent", timeout=20)

        # And Ana answers our reply
        [ours] = x.fake.sent_tweets()
        x.fake.mention(ANA, "Great, sent!", reply_to=ours["id"])
        assert reader.poll(MENTIONS).enqueued == 1
        wait_for(lambda: _messages(engine, ticket) == 3, timeout=20)

    # Then exactly one reply went out, answering the mention, and Ana's answer joined the ticket
    assert [t["referenced_tweets"][0]["id"] for t in x.fake.sent_tweets()] == [mention]
    assert _tickets(engine) == 1


def _tickets(engine: Engine) -> int:
    with engine.connect() as c:
        return len(c.execute(select(TICKET.c.id)).all())


def _messages(engine: Engine, ticket_id: int) -> int:
    with engine.connect() as c:
        return len(c.execute(select(MESSAGE.c.id).where(MESSAGE.c.ticket_id == ticket_id)).all())


@pytest.mark.slow
@pytest.mark.parametrize(("text", "endpoint"), [("Thanks, we will look at it.", "create_dm"),
                                                 ("public: Thanks, we will look at it.", "create_tweet")])
def test_worker_killed_after_sending_before_recording_sends_once(
    x: XServer, settings: Settings, broker, engine: Engine, text: str, endpoint: str,  # noqa: ANN001
) -> None:
    import signal

    from tests.cli import run_cli, settings_env, start_cli

    configured = x_settings(settings, x)
    env = settings_env(settings, acknowledge="false", heartbeat_timeout_seconds=2, effect_lease_seconds=2, x_bearer_token=BEARER_TOKEN, x_consumer_key=CONSUMER_KEY,
                  x_consumer_secret=CONSUMER_SECRET, x_access_token=ACCESS_TOKEN, x_access_token_secret=ACCESS_TOKEN_SECRET,
                  x_account_id=ACCOUNT_ID, x_api_url=x.url, x_timeout_seconds=60)
    x.fake.mention(ANA, "Is there a schema for grants?")
    assert adapter(x, QueueSink(broker, InflightRegistry(broker.client, configured.redis_namespace))).poll(MENTIONS).enqueued == 1
    run_cli(["worker", "--until-idle"], env, timeout=120)
    ticket = _only_ticket(engine)
    x.fake.inject(endpoint, "hang", 1, 60)  # X posts it; its answer never comes back
    victim = start_cli(["worker"], env)
    try:
        run_cli(["reply", f"HD-{ticket}", text, "--by", "priya"], env)
        sent = x.fake.sent_dms if endpoint == "create_dm" else x.fake.sent_tweets
        wait_for(lambda: len(sent()) == 1, timeout=60)
        time.sleep(0.3)
        assert _outbound(engine).status == "sending", "sent, not yet recorded"
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
    time.sleep(2.5)  # the dead worker's heartbeat and its lease run out
    run_cli(["worker", "--until-idle"], env, timeout=120)
    assert len(sent()) == 1, "the retry found the reply already on X"
    assert _outbound(engine).status == "sent"


def _only_ticket(engine: Engine) -> int:
    with engine.connect() as c:
        return c.execute(select(TICKET.c.id)).scalar_one()


def _outbound(engine: Engine) -> Any:
    with engine.connect() as c:
        return c.execute(select(MESSAGE).where(MESSAGE.c.direction == "out")).one()
