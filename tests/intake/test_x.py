"""The X adapter over real HTTP: the real tweepy client against the local X server (tests/servers/x.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import typer
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from config.settings import Settings
from intake.base import MemorySink
from intake.errors import SinkError
from intake.message import InboundMessage
from intake.queue import InflightRegistry, QueueSink
from intake.state import AdapterHealth, Checkpoint, RedisCheckpointStore
from intake.x import DMS, MENTIONS, XAdapter, run_x
from intake.x_api import XAccount, XApi
from intake.x_memory import ADAPTER, CrossPosts, GapLog
from storage.intake_store import MESSAGE, TICKET
from tests.intake.imap_helpers import wait_for
from tests.servers.x import ACCESS_TOKEN, ACCESS_TOKEN_SECRET, ACCOUNT_ID, ANA, BEN, BEARER_TOKEN, CONSUMER_KEY, CONSUMER_SECRET, XServer
from tests.waiting import wait_until_drained



@pytest.fixture
def rclient(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def x_account(server: XServer, timeout: float = 2.0) -> XAccount:
    return XAccount(ACCOUNT_ID, BEARER_TOKEN, CONSUMER_KEY, CONSUMER_SECRET, ACCESS_TOKEN, ACCESS_TOKEN_SECRET,
                    api_url=server.url, timeout=timeout, poll_seconds=60)


def make_adapter(server: XServer, client: redis.Redis, namespace: str, sink: Any, *, timeout: float = 2.0, backfill: bool = True,
                 clock: Any = time.time) -> XAdapter:
    health = AdapterHealth(client, namespace)
    account = x_account(server, timeout)
    return XAdapter(account, sink, RedisCheckpointStore(client, namespace), health, gaps=GapLog(client, namespace, health),
                    crossposts=CrossPosts(client, namespace), api=XApi(account, clock=clock), backfill=backfill, clock=clock,
                    backoff_min=0.01, backoff_max=0.05)


def checkpoint(client: redis.Redis, namespace: str, stream: str) -> int | None:
    found = RedisCheckpointStore(client, namespace).get(ADAPTER, ACCOUNT_ID, stream)
    return found.last_uid if found is not None else None


class WatchingSink(MemorySink):
    """Remembers, at every put, what the stream's checkpoint was (it must not move before the last put)."""

    def __init__(self, client: redis.Redis, namespace: str, fail_after: int | None = None) -> None:
        super().__init__()
        self.client, self.namespace, self.fail_after = client, namespace, fail_after
        self.seen: list[int | None] = []

    def put(self, message: InboundMessage) -> None:
        if self.fail_after is not None and len(self.messages) >= self.fail_after:
            raise SinkError("Redis went away")
        self.seen.append(checkpoint(self.client, self.namespace, MENTIONS))
        super().put(message)


# -- paging and the checkpoint ---------------------------------------------------------------
def test_the_checkpoint_advances_only_after_every_page_is_queued(x: XServer, rclient: redis.Redis, namespace: str) -> None:
    # Given 250 mentions since the checkpoint (three pages of 100)
    start = x.fake.mention(ANA, "an old mention, read before")
    RedisCheckpointStore(rclient, namespace).set(ADAPTER, ACCOUNT_ID, MENTIONS, Checkpoint(0, int(start)))
    ids = [x.fake.mention(ANA, f"question {i} about the tender schema") for i in range(250)]
    sink = WatchingSink(rclient, namespace)

    # When the adapter polls
    result = make_adapter(x, rclient, namespace, sink).poll(MENTIONS)

    # Then every page was read, every mention queued oldest first while the checkpoint stood still, and then it moved
    calls = x.fake.endpoint_calls("mentions")
    assert [c["params"].get("pagination_token") for c in calls] == [None, "page-100", "page-200"]
    assert all(c["params"]["since_id"] == start for c in calls)
    assert [m.external_id for m in sink.messages] == [f"tweet:{i}" for i in ids]
    assert set(sink.seen) == {int(start)}
    assert result.enqueued == 250
    assert result.error is None
    assert checkpoint(rclient, namespace, MENTIONS) == int(ids[-1])


def test_a_failed_page_queues_nothing_and_the_next_poll_reads_every_page_again(x: XServer, rclient: redis.Redis, namespace: str) -> None:
    # Given 150 mentions and a server that fails on the second page
    ids = [x.fake.mention(ANA, f"question {i}") for i in range(150)]
    x.fake.inject("mentions", "server_error", after=1)
    sink = WatchingSink(rclient, namespace)
    adapter = make_adapter(x, rclient, namespace, sink)

    # When it polls, then nothing is queued and the checkpoint is not set
    failed = adapter.poll(MENTIONS)
    assert failed.error
    assert "503" in failed.error
    assert sink.messages == []
    assert checkpoint(rclient, namespace, MENTIONS) is None

    # When it polls again (the backoff has passed), then everything arrives once
    time.sleep(0.1)
    [result] = [r for r in adapter.poll_due() if r.stream == MENTIONS]
    assert result.error is None
    assert [m.external_id for m in sink.messages] == [f"tweet:{i}" for i in ids]
    assert checkpoint(rclient, namespace, MENTIONS) == int(ids[-1])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_crash_while_queueing_is_read_again_without_duplicate_tickets(
    x: XServer, rclient: redis.Redis, namespace: str, settings: Settings, broker, engine: Engine, running_worker,  # noqa: ANN001
) -> None:
    # Given five mentions from five people, and a queue that fails after the third put
    people = [x.fake.add_user(str(3000 + i), f"user{i}", f"User {i}") for i in range(5)]
    ids = [x.fake.mention(p, f"How do we publish amendments for contract {i}?") for i, p in enumerate(people)]
    real = QueueSink(broker, InflightRegistry(broker.client, namespace))

    class Crashing(QueueSink):
        puts = 0

        def put(self, message: InboundMessage) -> None:
            if Crashing.puts == 3:
                raise SinkError("connection to Redis lost")
            Crashing.puts += 1
            super().put(message)

    with running_worker(engine, settings.model_copy(update={"acknowledge": False})):
        # When a poll dies after three of five were queued, then the checkpoint has not moved
        crashed = make_adapter(x, rclient, namespace, Crashing(broker, real.inflight)).poll(MENTIONS)
        assert crashed.error
        assert checkpoint(rclient, namespace, MENTIONS) is None

        # When the restarted adapter polls, then all five are read again and each becomes one ticket
        result = make_adapter(x, rclient, namespace, real).poll(MENTIONS)
        assert result.enqueued == 5
        wait_for(lambda: _count(engine, MESSAGE) == 5 and _count(engine, TICKET) == 5, timeout=20)
        wait_until_drained(broker)  # the three queued twice have been processed too
    assert _count(engine, TICKET) == 5
    assert _count(engine, MESSAGE) == 5
    assert checkpoint(rclient, namespace, MENTIONS) == int(ids[-1])


# -- what X cannot show ------------------------------------------------------------------------
def test_more_than_800_mentions_since_the_checkpoint_is_a_gap_shown_to_operators(x: XServer, rclient: redis.Redis, namespace: str) -> None:
    # Given a checkpoint from before an outage, and 900 mentions since
    old = x.fake.mention(ANA, "before the outage")
    RedisCheckpointStore(rclient, namespace).set(ADAPTER, ACCOUNT_ID, MENTIONS, Checkpoint(0, int(old)))
    ids = [x.fake.mention(BEN, f"mention {i} during the outage") for i in range(900)]
    sink = MemorySink()
    adapter = make_adapter(x, rclient, namespace, sink)

    # When the adapter polls
    result = adapter.poll(MENTIONS)

    # Then the 800 X still shows are queued, and the span before them is recorded as a gap and fails the adapter's health
    assert result.enqueued == 800
    assert sink.messages[0].external_id == f"tweet:{ids[100]}"
    assert result.gap is not None
    assert result.gap["after_id"] == old
    assert result.gap["before_id"] == ids[100]
    assert checkpoint(rclient, namespace, MENTIONS) == int(ids[-1])
    gaps = GapLog(rclient, namespace, AdapterHealth(rclient, namespace))
    [gap] = gaps.open()
    assert "800" in gap["detail"]
    assert gap["stream"] == MENTIONS
    health = AdapterHealth(rclient, namespace).read_all()[f"x:{ACCOUNT_ID}:mentions:gap"]
    assert float(health["last_error_at"]) > float(health.get("last_success", 0))

    # When an operator acknowledges it, then it is no longer open and the health entry recovers
    assert gaps.acknowledge("priya") == 1
    assert gaps.open() == []
    health = AdapterHealth(rclient, namespace).read_all()[f"x:{ACCOUNT_ID}:mentions:gap"]
    assert float(health["last_success"]) >= float(health["last_error_at"])

    # And the next poll finds no gap
    x.fake.mention(BEN, "after the outage")
    assert make_adapter(x, rclient, namespace, sink).poll(MENTIONS).gap is None


# -- threading ---------------------------------------------------------------------------------
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_dms_and_replies_in_a_tweet_conversation_join_one_ticket_each(
    x: XServer, rclient: redis.Redis, namespace: str, settings: Settings, broker, engine: Engine, running_worker,  # noqa: ANN001
) -> None:
    # Given a DM conversation of three messages, a mention, a reply to it, a retweet and a post of our own
    for text in ("Hello, we cannot validate our release package", "It says the ocid prefix is unknown", "Our prefix is ocds-abc123"):
        x.fake.dm(ANA, text)
    first = x.fake.mention(BEN, "Where is the codelist for award status documented?")
    x.fake.mention(BEN, "I mean for version 1.1 of the standard", reply_to=first)
    x.fake.retweet(BEN, first)
    x.fake.tweet(ACCOUNT_ID, "@osdshelp our own post")
    sink = QueueSink(broker, InflightRegistry(broker.client, namespace))

    with running_worker(engine, settings.model_copy(update={"acknowledge": False})):
        # When the adapter polls, and later Ana sends one more DM and Ben replies again in his conversation
        adapter = make_adapter(x, rclient, namespace, sink)
        results = {r.stream: r for r in adapter.poll_due()}
        assert results[MENTIONS].skipped == {"retweet": 1, "own post": 1}
        assert results[MENTIONS].enqueued == 2
        assert results[DMS].enqueued == 3
        wait_for(lambda: _count(engine, MESSAGE) == 5, timeout=20)
        x.fake.dm(ANA, "Any news?")
        x.fake.mention(BEN, "Found it, thanks", reply_to=first)
        for stream in (MENTIONS, DMS):
            adapter.poll(stream)
        wait_for(lambda: _count(engine, MESSAGE) == 7, timeout=20)

    # Then there are two tickets: Ana's DMs and Ben's conversation
    with engine.connect() as c:
        rows = c.execute(select(MESSAGE.c.ticket_id, MESSAGE.c.sender_address, MESSAGE.c.thread_key)).all()
    by_ticket: dict[int, set[str]] = {}
    for row in rows:
        by_ticket.setdefault(row.ticket_id, set()).add(row.sender_address)
    assert sorted(by_ticket.values(), key=sorted) == [{ANA}, {BEN}]
    assert {r.thread_key for r in rows if r.sender_address == ANA} == {f"dm:{ANA}-{ACCOUNT_ID}"}
    assert {r.thread_key for r in rows if r.sender_address == BEN} == {f"tweet-conversation:{first}"}


# -- limits ------------------------------------------------------------------------------------
def test_a_429_schedules_the_next_poll_after_the_reset_without_sleeping(x: XServer, rclient: redis.Redis, namespace: str) -> None:
    # Given a mention and an API that is rate limited for the next 300 s
    x.fake.mention(ANA, "Is the 1.2 release out?")
    x.fake.inject("mentions", "ratelimit", value=300)
    now = [time.time()]
    adapter = make_adapter(x, rclient, namespace, MemorySink(), clock=lambda: now[0])

    # When it polls, then it returns at once with the next poll set after the reset
    started = time.monotonic()
    result = adapter.poll(MENTIONS)
    assert time.monotonic() - started < 1.5
    assert result.rate_limited
    assert result.next_poll_at == pytest.approx(now[0] + 301, abs=2)
    assert "rate limited" in AdapterHealth(rclient, namespace).read_all()[f"x:{ACCOUNT_ID}:mentions"]["last_error"]

    # When polled again before the reset, then X is not called; after it, it is and the mention arrives
    calls = len(x.fake.endpoint_calls("mentions"))
    assert [r.stream for r in adapter.poll_due()] == [DMS]
    assert len(x.fake.endpoint_calls("mentions")) == calls
    now[0] = result.next_poll_at + 0.1
    assert [r.enqueued for r in adapter.poll_due() if r.stream == MENTIONS] == [1]


def test_failed_polls_back_off_exponentially_and_a_good_poll_starts_again(x: XServer, rclient: redis.Redis, namespace: str) -> None:
    # Given a server that fails the next three mention calls, and an adapter backing off from 10 s up to 30 s (±25 %)
    x.fake.mention(ANA, "Is the 1.2 release out?")
    x.fake.inject("mentions", "server_error", times=3)
    now = [time.time()]
    account = x_account(x)
    adapter = XAdapter(account, MemorySink(), RedisCheckpointStore(rclient, namespace), AdapterHealth(rclient, namespace),
                       api=XApi(account, clock=lambda: now[0]), backfill=True, clock=lambda: now[0], backoff_min=10, backoff_max=30)

    # When it polls three times, then each failure puts the next poll twice as far off, up to the maximum
    waits = [adapter.poll(MENTIONS).next_poll_at - now[0] for _ in range(3)]
    assert 7.5 <= waits[0] <= 12.5
    assert 15 <= waits[1] <= 25
    assert 22.5 <= waits[2] <= 37.5

    # When a poll succeeds, then the next is the usual interval away
    assert adapter.poll(MENTIONS).next_poll_at - now[0] == pytest.approx(account.poll_seconds)

    # When a later poll fails, then it waits the shortest delay again
    x.fake.inject("mentions", "server_error")
    assert 7.5 <= adapter.poll(MENTIONS).next_poll_at - now[0] <= 12.5
    adapter.api.close()


def test_the_last_call_of_a_window_waits_for_the_reset(x: XServer, rclient: redis.Redis, namespace: str) -> None:
    # Given an answer that says no calls remain for 600 s
    x.fake.mention(ANA, "question")
    x.fake.inject("mentions", "last_call", value=600)
    adapter = make_adapter(x, rclient, namespace, MemorySink())

    # When it polls, then the mention is queued and the next poll waits for the reset, not the usual 60 s
    result = adapter.poll(MENTIONS)
    assert result.enqueued == 1
    assert result.error is None
    assert result.next_poll_at == pytest.approx(time.time() + 601, abs=3)


def test_a_hanging_server_times_out(x: XServer, rclient: redis.Redis, namespace: str) -> None:
    # Given a server that does not answer for 5 s, and a 1 s timeout
    x.fake.mention(ANA, "question")
    x.fake.inject("mentions", "hang", value=5)
    adapter = make_adapter(x, rclient, namespace, MemorySink(), timeout=1.0)

    # When it polls, then the call gives up after the timeout, the failure is recorded and the checkpoint stays
    started = time.monotonic()
    result = adapter.poll(MENTIONS)
    assert time.monotonic() - started < 3
    assert result.error
    assert "Timeout" in result.error
    assert checkpoint(rclient, namespace, MENTIONS) is None
    assert "Timeout" in AdapterHealth(rclient, namespace).read_all()[f"x:{ACCOUNT_ID}:mentions"]["last_error"]


def test_malformed_answers_and_items_do_not_stop_the_stream(x: XServer, rclient: redis.Redis, namespace: str) -> None:
    sink = MemorySink()
    adapter = make_adapter(x, rclient, namespace, sink)
    # Given answers that are not the documented shape
    for body in ([1, 2, 3], "not an object", {"data": "nope"}, {"data": [], "meta": "x"}):
        x.fake.inject("mentions", "malformed", value=body)
        # When polled, then the poll fails softly: nothing queued, no checkpoint, no exception
        result = adapter.poll(MENTIONS)
        assert result.error
        assert sink.messages == []
        assert checkpoint(rclient, namespace, MENTIONS) is None

    # Given a page whose items are partly malformed
    good = {"id": "1960000000000000001", "text": "@osdshelp a good question", "author_id": ANA, "conversation_id": "1960000000000000001"}
    items = [{"text": "no id"}, {"id": "abc"}, "a string", {"id": "1960000000000000002", "text": ["a", "list"], "author_id": BEN},
             {"id": "1960000000000000003", "text": "@osdshelp hi there", "author_id": BEN, "referenced_tweets": "oops"}, good]
    x.fake.inject("mentions", "malformed", value={"data": items, "meta": {"result_count": len(items)}})

    # When polled, then the good one is queued, the malformed ones quarantined with their reason, and the stream moves on
    result = adapter.poll(MENTIONS)
    assert result.error is None
    assert [m.external_id for m in sink.messages] == ["tweet:1960000000000000001"]
    assert len(sink.rejected) == 5
    assert {r.reason for r in sink.rejected} == {"malformed"}
    assert result.skipped == {"malformed": 5}
    assert checkpoint(rclient, namespace, MENTIONS) == 1960000000000000003


def test_without_backfill_the_first_poll_starts_from_now(x: XServer, rclient: redis.Redis, namespace: str) -> None:
    # Given mentions and DMs from before the adapter ever ran
    x.fake.mention(ANA, "an old mention")
    x.fake.dm(ANA, "an old DM")
    sink = MemorySink()
    adapter = make_adapter(x, rclient, namespace, sink, backfill=False)

    # When it first polls, then nothing old is queued and no call was needed
    assert {r.stream: r.enqueued for r in adapter.poll_due()} == {MENTIONS: 0, DMS: 0}
    assert x.fake.calls == []

    # When something new arrives, then the next polls queue it
    time.sleep(0.01)
    new = x.fake.mention(ANA, "a new mention")
    dm = x.fake.dm(ANA, "a new DM")
    assert checkpoint(rclient, namespace, MENTIONS) <= int(new)
    for stream in (MENTIONS, DMS):
        adapter.poll(stream)
    assert [m.external_id for m in sink.messages] == [f"tweet:{new}", f"dm:{dm}"]


# -- entry points --------------------------------------------------------------------------------
def x_settings(settings: Settings, server: XServer) -> Settings:
    return settings.model_copy(update={
        "x_bearer_token": BEARER_TOKEN, "x_consumer_key": CONSUMER_KEY, "x_consumer_secret": CONSUMER_SECRET,
        "x_access_token": ACCESS_TOKEN, "x_access_token_secret": ACCESS_TOKEN_SECRET, "x_account_id": ACCOUNT_ID,
        "x_api_url": server.url, "x_timeout_seconds": 2,
    })


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_run_x_once_polls_both_streams_from_settings(x: XServer, rclient: redis.Redis, settings: Settings) -> None:
    x.fake.mention(ANA, "question one")
    x.fake.dm(BEN, "question two")
    sink = MemorySink()
    results = run_x(x_settings(settings, x), threading.Event(), sink=sink, client=rclient, once=True, backfill=True)
    assert {r.stream: r.enqueued for r in results} == {MENTIONS: 1, DMS: 1}
    assert {m.sender.address for m in sink.messages} == {ANA, BEN}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_intake_x_once_and_x_gaps_commands(x: XServer, settings: Settings, rclient: redis.Redis, namespace: str) -> None:
    from ops.x_cli import register, register_x  # noqa: PLC0415

    app, intake = typer.Typer(), typer.Typer()
    app.add_typer(intake, name="intake")
    register(intake)
    register_x(app)
    env = {f"HELPDESK_{k.upper()}": str(v) for k, v in x_settings(settings, x).model_dump().items()
           if k.startswith(("x_", "redis_")) and v is not None}
    env["HELPDESK_DATA_DIR"] = str(settings.data_dir)
    old = x.fake.mention(ANA, "before")
    RedisCheckpointStore(rclient, namespace).set(ADAPTER, ACCOUNT_ID, MENTIONS, Checkpoint(0, int(old)))
    for i in range(801):
        x.fake.mention(BEN, f"mention {i}")

    polled = CliRunner().invoke(app, ["intake", "x", "--once"], env=env)
    assert polled.exit_code == 0, polled.output
    assert "mentions" in polled.output
    assert "800" in polled.output
    assert "gap" in polled.output.lower()

    listed = CliRunner().invoke(app, ["x", "gaps", "--json"], env=env)
    assert listed.exit_code == 0
    assert '"stream": "mentions"' in listed.output
    acked = CliRunner().invoke(app, ["x", "gaps", "--ack", "priya"], env=env)
    assert acked.exit_code == 0
    assert "acknowledged 1" in acked.output


def _count(engine: Engine, table: Any) -> int:
    with engine.connect() as c:
        return c.execute(select(func.count()).select_from(table)).scalar_one()


class _ExplodingCrossPosts(CrossPosts):
    """The real cross-post memory, except that one text makes it raise what nobody foresaw."""

    def earlier(self, sender: str, text: str, message_id: str) -> str | None:
        if "RECURSE-ME" in text:
            raise RecursionError("maximum recursion depth exceeded")
        return super().earlier(sender, text, message_id)


def test_an_item_whose_conversion_raises_is_quarantined_and_the_stream_goes_on(x: XServer, rclient: redis.Redis, namespace: str) -> None:
    # Given three mentions, the middle one making its conversion raise RecursionError
    first = x.fake.mention(ANA, "first question")
    bomb = x.fake.mention(BEN, "RECURSE-ME please")
    last = x.fake.mention(ANA, "second question")
    sink = MemorySink()
    health = AdapterHealth(rclient, namespace)
    account = x_account(x)
    adapter = XAdapter(account, sink, RedisCheckpointStore(rclient, namespace), health, crossposts=_ExplodingCrossPosts(rclient, namespace),
                       api=XApi(account), backfill=True, backoff_min=0.01, backoff_max=0.05)
    # When polled
    result = adapter.poll(MENTIONS)
    # Then the bad one is quarantined with the exception, the others are queued, and the checkpoint is past all three
    assert result.error is None
    assert result.skipped == {"adapter_error": 1}
    assert [m.external_id for m in sink.messages] == [f"tweet:{first}", f"tweet:{last}"]
    [rejected] = sink.rejected
    assert rejected.reason == "adapter_error"
    assert "RecursionError: maximum recursion depth" in rejected.detail
    assert bomb in rejected.detail  # the raw item is kept in the detail
    assert checkpoint(rclient, namespace, MENTIONS) == int(last)
    adapter.api.close()


def test_a_redis_failure_during_conversion_fails_the_poll_and_keeps_the_checkpoint(x: XServer, rclient: redis.Redis, namespace: str) -> None:
    # Given a cross-post memory whose Redis is unreachable (a transport failure, not the item's)
    x.fake.mention(ANA, "is the tender value field required in every release?")
    sink = MemorySink()
    account = x_account(x)
    gone = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    adapter = XAdapter(account, sink, RedisCheckpointStore(rclient, namespace), AdapterHealth(rclient, namespace),
                       crossposts=CrossPosts(gone, namespace), api=XApi(account), backfill=True, backoff_min=0.01, backoff_max=0.05)
    # When polled, then the poll fails, nothing is quarantined, and the checkpoint stays for the retry
    result = adapter.poll(MENTIONS)
    assert result.error
    assert "ConnectionError" in result.error
    assert sink.messages == []
    assert sink.rejected == []
    assert checkpoint(rclient, namespace, MENTIONS) is None
    adapter.api.close()
