"""X (Twitter) as a channel: mentions of the helpdesk account and its direct messages, polled through ``intake.x_api``.

The parts: ``intake.x_api`` the API client and its errors (shared with the reply
sender), ``intake.x_payload`` an item → InboundMessage, ``intake.x_memory`` the
cross-posts and gaps kept in Redis; this module the adapter that polls.

Delivery semantics: a mention or a DM counts as received once it is in the
queue. Each stream has its own checkpoint — the newest tweet id (mentions, the
API's ``since_id``) or DM event id seen — and it advances only after every page
read above it was enqueued. A failure anywhere in a poll (network, 5xx, 429,
Redis) enqueues nothing of that poll and leaves the checkpoint alone: the next
poll reads the same items again and dedupe (channel ``x``, ids ``tweet:<id>``
and ``dm:<event id>``) absorbs any repeat. Within a poll items are enqueued
oldest first, so a reply follows the message it answers.

What the API cannot show us is surfaced, not hidden: the mentions timeline
reaches only the newest 800 mentions and the DM events endpoint only the last
30 days, so after a longer outage the span between the checkpoint and the
oldest item still reachable is recorded as a *gap* (``GapLog``): kept in
Redis, logged, listed by ``helpdesk x gaps`` and shown by ``helpdesk status``
as a failing adapter ``x:<account>:<stream>:gap`` until an operator
acknowledges it. A mentions gap is 800 or more mentions above the checkpoint; a
DM gap is a checkpoint older than 30 days that the DM events no longer reach
(X cannot say whether DMs were lost in between, so it errs towards telling).

Start: without a checkpoint a stream starts *from now* (its checkpoint is the
snowflake id of the moment the adapter first ran), so connecting the desk to a
busy account does not turn months of old mentions into tickets; with
``backfill`` it reads whatever the API still reaches instead.

Bad input never stops a stream: an answer that is not the documented JSON shape
is a failed poll (retried with backoff, the checkpoint unmoved); a single item
that cannot become a message is quarantined through ``Sink.reject`` with its
reason — ``malformed`` (no id, wrong types) or ``adapter_error`` (anything else
its conversion raised, with the traceback) — and the stream moves on. Only
transport failures (X, Redis, the queue) fail a poll. The polling loop itself
is supervised (``intake.supervision``): restarted if it dies, with a heartbeat
in each stream's health record.

Retweets, our own tweets and DMs, and the same text sent by the same person
both as a mention and as a DM (a cross-post: it threads onto the first one's
ticket) never open tickets.

Limits: nothing here sleeps. A failed poll schedules the stream's next poll
after a bounded exponential backoff with jitter (``intake.backoff``, tenacity's
strategies); a stream that is rate limited (a 429, or ``remaining`` 0 in the
``x-rate-limit-*`` headers) is scheduled for its next poll after the reset.
"""

from __future__ import annotations

import hashlib
import html
import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import redis
import structlog
from pydantic import ValidationError

from config.settings import Settings
from intake.backoff import FailureStreak, backoff
from intake.base import Rejected, Sink
from intake.errors import SinkError, XError, XRateLimited
from intake.message import InboundMessage
from intake.state import AdapterHealth, Checkpoint, CheckpointStore, MemoryCheckpointStore, RedisCheckpointStore
from intake.supervision import ADAPTER_ERROR, Backoff, Loop, failure_detail, supervise
from intake.x_api import XAccount, XApi, item_id, snowflake_at, snowflake_time
from intake.x_memory import ADAPTER, CrossPosts, GapLog
from intake.x_payload import CHANNEL, dm_skip_reason, dm_to_inbound, tweet_skip_reason, tweet_to_inbound, without_leading_mentions

log = structlog.get_logger("helpdesk.x")

MENTIONS = "mentions"
DMS = "dm"
MENTIONS_REACHABLE = 800  # the mentions timeline returns at most the newest 800 mentions
DM_DAYS_REACHABLE = 30  # DM events reach back 30 days
PAGE_SIZE = 100
TWEET_FIELDS = ["author_id", "conversation_id", "created_at", "in_reply_to_user_id", "referenced_tweets", "lang"]
TWEET_EXPANSIONS = ["author_id"]
DM_EVENT_FIELDS = ["id", "text", "event_type", "created_at", "dm_conversation_id", "sender_id", "participant_ids", "referenced_tweets"]
USER_FIELDS = ["username", "name"]


@dataclass(frozen=True)
class PollResult:
    stream: str
    read: int = 0  # items above the checkpoint that the API returned
    enqueued: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    checkpoint: int | None = None
    gap: dict[str, Any] | None = None
    next_poll_at: float = 0.0
    error: str | None = None
    rate_limited: bool = False


@dataclass
class _Batch:
    """What one poll of one stream read: items oldest first, the users they name, the newest id seen."""

    items: list[dict[str, Any]]
    users: dict[str, dict[str, Any]]
    newest: int | None
    gap: tuple[int, int, str] | None = None  # (after id, before id, why)
    malformed: list[Any] = field(default_factory=list)


class XAdapter:
    """Polls the account's mentions and (with user-context keys) its DMs, each on its own schedule."""

    def __init__(
        self,
        account: XAccount,
        sink: Sink,
        checkpoints: CheckpointStore,
        health: AdapterHealth,
        *,
        gaps: GapLog | None = None,
        crossposts: CrossPosts | None = None,
        api: XApi | None = None,
        clock: Callable[[], float] = time.time,
        backfill: bool = False,
        backoff_min: float = 2.0,
        backoff_max: float = 300.0,
        restart: Backoff = Backoff(1.0, 300.0),
        heartbeat_seconds: float = 5.0,
    ) -> None:
        self.account = account
        self.sink = sink
        self.checkpoints = checkpoints
        self.health = health
        self.gaps = gaps or GapLog(None, "", health)
        self.crossposts = crossposts or CrossPosts(None, "")
        self.api = api or XApi(account, clock=clock)
        self.clock = clock
        self.backfill = backfill
        self.restart, self.heartbeat_seconds = restart, heartbeat_seconds
        self.streams = (MENTIONS, DMS) if account.user_context else (MENTIONS,)
        self.due: dict[str, float] = dict.fromkeys(self.streams, 0.0)
        wait = backoff(backoff_min, backoff_max, jitter=0.25)
        self.failures: defaultdict[str, FailureStreak] = defaultdict(lambda: FailureStreak(wait))  # failed polls in a row, per stream

    def run(self, stop: threading.Event) -> None:
        """Until stopped: the polling loop, supervised (restarted if it dies), with a heartbeat per stream."""
        records = tuple(f"{ADAPTER}:{self.account.account_id}:{stream}" for stream in self.streams)
        try:
            supervise([Loop(ADAPTER, lambda: self.loop(stop), records)], stop, self.health, restart=self.restart,
                      heartbeat_seconds=self.heartbeat_seconds)
        finally:
            self.api.close()

    def loop(self, stop: threading.Event) -> None:
        """Poll each stream when it is due, then wait (on ``stop``) for the next one due."""
        while not stop.is_set():
            self.poll_due()
            stop.wait(max(0.0, min(self.due.values()) - self.clock()))

    def poll_due(self) -> list[PollResult]:
        """Poll every stream whose time has come; a stream waiting out a rate limit is not called."""
        return [self.poll(stream) for stream in self.streams if self.due[stream] <= self.clock()]

    def poll(self, stream: str) -> PollResult:
        """One poll of ``stream``; never raises for X's, Redis's or the input's failures: they schedule a later poll."""
        name = f"{ADAPTER}:{self.account.account_id}:{stream}"
        try:
            result = self._sync(stream)
        except XRateLimited as exc:
            self.health.error(name, str(exc))
            return self._schedule(stream, PollResult(stream, error=str(exc), rate_limited=True), exc.reset_at + 1)
        except (XError, SinkError, redis.RedisError) as exc:
            return self._failed(stream, name, exc)
        except Exception as exc:  # noqa: BLE001 - a bug or input nobody foresaw must not end intake: report, back off, retry
            log.exception("x poll failed unexpectedly", stream=stream)
            return self._failed(stream, name, exc)
        self.failures[stream].succeeded()
        self.health.success(name, f"checkpoint={result.checkpoint} read={result.read} enqueued={result.enqueued}")
        rate = self.api.rates.get(_METHODS[stream])
        after_reset = rate.reset_at + 1 if rate is not None and rate.exhausted and rate.reset_at else 0.0
        return self._schedule(stream, result, max(self.clock() + self.account.poll_seconds, after_reset))

    def _failed(self, stream: str, name: str, exc: BaseException) -> PollResult:
        error = f"{type(exc).__name__}: {exc}"
        self.health.error(name, error)
        delay = self.failures[stream].failed(exc)
        log.warning("x poll failed", stream=stream, error=error, retry_in=round(delay, 1))
        return self._schedule(stream, PollResult(stream, error=error), self.clock() + delay)

    def _schedule(self, stream: str, result: PollResult, at: float) -> PollResult:
        self.due[stream] = at
        if result.rate_limited or at > self.clock() + self.account.poll_seconds + 1:
            log.info("x rate limited: next poll after the reset", stream=stream, at=datetime.fromtimestamp(at, timezone.utc).isoformat())
        return PollResult(**{**result.__dict__, "next_poll_at": at})

    def _sync(self, stream: str) -> PollResult:
        account = self.account.account_id
        checkpoint = self.checkpoints.get(ADAPTER, account, stream)
        since = checkpoint.last_uid if checkpoint is not None else None
        if since is None and not self.backfill:  # start from now: nothing older becomes a ticket
            start = snowflake_at(self.clock())
            self.checkpoints.set(ADAPTER, account, stream, Checkpoint(0, start))
            log.info("x stream starts from now", stream=stream, checkpoint=start)
            return PollResult(stream, checkpoint=start)
        batch = self._read_mentions(since) if stream == MENTIONS else self._read_dms(since)
        enqueued, skipped = self._enqueue(stream, batch)
        gap = None
        if batch.gap is not None:
            gap = self.gaps.record(account, stream, *batch.gap)
        newest = batch.newest if since is None or (batch.newest or 0) > since else since
        if newest is not None and newest != since:  # only now: every item up to ``newest`` is in the queue
            self.checkpoints.set(ADAPTER, account, stream, Checkpoint(0, newest))
        return PollResult(stream, len(batch.items) + len(batch.malformed), enqueued, dict(skipped), newest, gap)

    def _read_mentions(self, since: int | None) -> _Batch:
        tweets: dict[int, dict[str, Any]] = {}
        users: dict[str, dict[str, Any]] = {}
        malformed: list[Any] = []
        for page in self.api.pages(
            "get_users_mentions", id=self.account.account_id, since_id=since, max_results=PAGE_SIZE, tweet_fields=TWEET_FIELDS,
            expansions=TWEET_EXPANSIONS, user_fields=USER_FIELDS, user_auth=not self.account.bearer_token,
        ):
            users.update(page.users)
            for tweet in page.items:
                tweet_id = item_id(tweet)
                if tweet_id is None:
                    malformed.append(tweet)
                elif since is None or tweet_id > since:
                    tweets[tweet_id] = tweet
        ordered = [tweets[i] for i in sorted(tweets)]
        gap = None
        if since is not None and len(ordered) >= MENTIONS_REACHABLE:  # the newest 800 all lie above the checkpoint
            oldest = int(ordered[0]["id"])
            gap = (since, oldest, f"mentions between {snowflake_time(since):%Y-%m-%d %H:%M} and {snowflake_time(oldest):%Y-%m-%d %H:%M} UTC "
                                  f"may be missing: X returns only the newest {MENTIONS_REACHABLE} mentions; read them on X")
        return _Batch(ordered, users, max(tweets) if tweets else None, gap, malformed)

    def _read_dms(self, since: int | None) -> _Batch:
        events: dict[int, dict[str, Any]] = {}
        users: dict[str, dict[str, Any]] = {}
        malformed: list[Any] = []
        newest, reached = None, since is None
        for page in self.api.pages(
            "get_direct_message_events", dm_event_fields=DM_EVENT_FIELDS, event_types="MessageCreate", expansions=["sender_id"],
            user_fields=USER_FIELDS, max_results=PAGE_SIZE, user_auth=True,
        ):
            users.update(page.users)
            for event in page.items:
                event_id = item_id(event)
                if event_id is None:
                    malformed.append(event)
                    continue
                newest = max(newest or event_id, event_id)
                if since is not None and event_id <= since:
                    reached = True
                else:
                    events[event_id] = event
            if reached and since is not None:
                break  # newest first: everything further down is below the checkpoint
        return _Batch([events[i] for i in sorted(events)], users, newest, self._dm_gap(since, events, reached), malformed)

    def _dm_gap(self, since: int | None, events: dict[int, dict[str, Any]], reached: bool) -> tuple[int, int, str] | None:
        """A gap only when the checkpoint is older than the DM window: a newer one is always reachable (unless deleted)."""
        if since is None or reached or not events or snowflake_time(since).timestamp() > self.clock() - DM_DAYS_REACHABLE * 86400:
            return None
        oldest = min(events)
        return (since, oldest, f"direct messages between {snowflake_time(since):%Y-%m-%d %H:%M} and {snowflake_time(oldest):%Y-%m-%d %H:%M} "
                               f"UTC may be missing: X returns only the last {DM_DAYS_REACHABLE} days of DMs; read them on X")

    def _enqueue(self, stream: str, batch: _Batch) -> tuple[int, Counter[str]]:
        """Put every enquiry of the batch, oldest first; a DM also names the previous one of its conversation."""
        skipped: Counter[str] = Counter()
        for item in batch.malformed:
            self._reject(stream, item, "malformed", "an item without a numeric id")
            skipped["malformed"] += 1
        last_in_conversation: dict[str, str] = {}
        enqueued = 0
        for item in batch.items:
            message, reason = self._convert(stream, item, batch.users, last_in_conversation)
            if message is None:
                skipped[reason] += 1
                continue
            self.sink.put(message)
            enqueued += 1
        return enqueued, skipped

    def _convert(self, stream: str, item: dict[str, Any], users: dict[str, dict[str, Any]],
                 last: dict[str, str]) -> tuple[InboundMessage | None, str]:
        """(the message, "") for an enquiry; (None, why) for an item that is none — a malformed one is quarantined."""
        account = self.account.account_id
        try:
            reason = tweet_skip_reason(item, account) if stream == MENTIONS else dm_skip_reason(item, account)
            if reason is not None:
                return None, reason
            return self._message(stream, item, users, last), ""
        except (SinkError, redis.RedisError):
            raise  # transport: the poll fails and is retried, the checkpoint stays
        except (ValidationError, KeyError, TypeError, ValueError, AttributeError) as exc:  # fields of the wrong type
            self._reject(stream, item, "malformed", f"{type(exc).__name__}: {exc}")
            return None, "malformed"
        except Exception as exc:  # noqa: BLE001 - whatever one item does, the items behind it are read
            self._reject(stream, item, ADAPTER_ERROR, failure_detail(exc))
            return None, ADAPTER_ERROR

    def _message(self, stream: str, item: dict[str, Any], users: dict[str, dict[str, Any]], last: dict[str, str]) -> InboundMessage:
        """The item as a message; ``last`` (the newest message of each DM conversation so far) is updated."""
        kind = "tweet" if stream == MENTIONS else "dm"
        message_id = f"{kind}:{item['id']}"
        sender = str(item.get("author_id") if stream == MENTIONS else item.get("sender_id"))
        text = without_leading_mentions(html.unescape(item.get("text") or "")) if stream == MENTIONS else item.get("text") or ""
        refs: list[str] = []
        conversation = str(item.get("dm_conversation_id") or "")
        if stream == DMS and conversation in last:
            refs.append(last[conversation])  # so the later one waits for the first to open the ticket
        earlier = self.crossposts.earlier(sender, text, message_id)
        if earlier is not None:  # the same words by the same person as a mention and a DM: one conversation
            refs.append(earlier)
            log.info("x cross-post threads onto the earlier message", message=message_id, earlier=earlier)
        source = f"x:{self.account.account_id}:{stream}:{item['id']}"
        convert = tweet_to_inbound if stream == MENTIONS else dm_to_inbound
        message = convert(item, users, source=source, received_at=datetime.fromtimestamp(self.clock(), timezone.utc),
                          also_replies_to=tuple(refs))
        if stream == DMS:
            last[conversation] = message_id
        return message

    def _reject(self, stream: str, item: Any, reason: str, detail: str) -> None:
        raw = json.dumps(item, sort_keys=True, default=str)[:100_000]
        self.sink.reject(Rejected(
            channel=CHANNEL, key=hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest(), reason=reason,
            detail=f"{stream}: {detail}: {raw[:3000]}", source=f"x:{self.account.account_id}:{stream}",
            received_at=datetime.fromtimestamp(self.clock(), timezone.utc),
        ))
        log.warning("x item quarantined", stream=stream, reason=reason, detail=detail[:200])


_METHODS = {MENTIONS: "get_users_mentions", DMS: "get_direct_message_events"}


def build_adapter(settings: Settings, sink: Sink, client: redis.Redis | None, *, backfill: bool = False) -> XAdapter:
    """The adapter for ``settings``, its checkpoints, health and gaps kept in Redis (in memory without a client)."""
    account = XAccount.from_settings(settings)
    namespace = settings.redis_namespace
    health = AdapterHealth(client, namespace)
    checkpoints = RedisCheckpointStore(client, namespace) if client is not None else MemoryCheckpointStore()
    return XAdapter(account, sink, checkpoints, health, gaps=GapLog(client, namespace, health),
                    crossposts=CrossPosts(client, namespace), backfill=backfill, heartbeat_seconds=settings.adapter_heartbeat_seconds)


def run_x(settings: Settings, stop: threading.Event, *, sink: Sink, client: redis.Redis | None, once: bool = False,
          backfill: bool = False) -> list[PollResult]:
    """Run the X intake until ``stop`` is set, or (``once``) poll each stream one time and return what happened."""
    adapter = build_adapter(settings, sink, client, backfill=backfill)
    if not once:
        adapter.run(stop)
        return []
    try:
        return adapter.poll_due()
    finally:
        adapter.api.close()
