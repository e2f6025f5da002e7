"""X (Twitter) as a channel: mentions of the helpdesk account and its direct messages, read with tweepy's v2 ``Client``.

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

Threading: a tweet's thread key is its X conversation (``tweet-conversation:<id>``)
and its ``in_reply_to`` the tweet it answers; a DM's thread key is its DM
conversation (``dm:<dm_conversation_id>``), so every DM of a conversation joins
one ticket. Retweets, our own tweets and DMs, and the same text sent by the
same person both as a mention and as a DM (a cross-post: it threads onto the
first one's ticket) never open tickets.

Limits: tweepy's ``wait_on_rate_limit`` would sleep the calling thread for up to
15 minutes; it stays off. The ``x-rate-limit-*`` headers of every answer are
read, and a stream that is rate limited (a 429, or ``remaining`` 0) is
scheduled for its next poll after the reset. tweepy sets no HTTP timeout and
hardcodes ``https://api.twitter.com``: its requests session is replaced by
``RoutedSession``, which adds the timeout to every call and sends it to the
configured API URL.

Errors raised here (the adapter turns them into health records and a later poll):

    XError                 base of everything raised here
    ├── XUnavailable       network error, timeout or 5xx: the outcome is unknown; try again later
    ├── XRateLimited       429: carries ``reset_at`` (epoch seconds), when X accepts calls again
    └── XRefused           any other 4xx: the same call will fail again (credentials, access level, bad request)
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import redis
import requests
import structlog
import tweepy
from pydantic import ValidationError

from config.errors import SettingsError
from config.settings import Settings
from intake.base import Rejected, Sink
from intake.errors import SinkError
from intake.message import InboundMessage, Party, ThreadRefs, content_hash
from intake.state import AdapterHealth, Checkpoint, CheckpointStore, MemoryCheckpointStore, RedisCheckpointStore
from intake.supervision import ADAPTER_ERROR, Backoff, Loop, failure_detail, supervise

log = structlog.get_logger("helpdesk.x")

CHANNEL = "x"
ADAPTER = "x"
MENTIONS = "mentions"
DMS = "dm"
TWEEPY_HOST = "https://api.twitter.com"  # what tweepy.Client puts in front of every route
MENTIONS_REACHABLE = 800  # the mentions timeline returns at most the newest 800 mentions
DM_DAYS_REACHABLE = 30  # DM events reach back 30 days
PAGE_SIZE = 100
MAX_PAGES = 100
RATE_LIMIT_FALLBACK_SECONDS = 60.0  # a 429 without x-rate-limit-reset: try again after this
TWITTER_EPOCH_MS = 1288834974657
TWEET_FIELDS = ["author_id", "conversation_id", "created_at", "in_reply_to_user_id", "referenced_tweets", "lang"]
TWEET_EXPANSIONS = ["author_id"]
DM_EVENT_FIELDS = ["id", "text", "event_type", "created_at", "dm_conversation_id", "sender_id", "participant_ids", "referenced_tweets"]
USER_FIELDS = ["username", "name"]
_LEADING_MENTIONS = re.compile(r"^(?:\s*@\w{1,15})+\s*")
_SPACE = re.compile(r"\s+")


# -- errors ------------------------------------------------------------------------------
class XError(Exception):
    """Base of the errors raised here."""


class XUnavailable(XError):
    """A network error, a timeout or a server error: the outcome of the call is unknown."""


class XRateLimited(XError):
    def __init__(self, method: str, reset_at: float) -> None:
        super().__init__(f"{method}: rate limited until {datetime.fromtimestamp(reset_at, timezone.utc):%H:%M:%S} UTC")
        self.method = method
        self.reset_at = reset_at


class XRefused(XError):
    """X refused the call (4xx other than 429): retrying it unchanged will not help."""

    def __init__(self, message: str, status: int, codes: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.codes = codes


# -- the account and the client ---------------------------------------------------------
@dataclass(frozen=True)
class XAccount:
    """The helpdesk's X account and the credentials to act as it."""

    account_id: str
    bearer_token: str | None
    consumer_key: str | None
    consumer_secret: str | None
    access_token: str | None
    access_token_secret: str | None
    api_url: str = TWEEPY_HOST
    timeout: float = 15.0
    poll_seconds: float = 60.0

    @property
    def user_context(self) -> bool:
        """OAuth 1.0a user context: needed for DMs and for posting."""
        return all((self.consumer_key, self.consumer_secret, self.access_token, self.access_token_secret))

    @classmethod
    def from_settings(cls, settings: Settings) -> "XAccount":
        missing = [] if settings.x_account_id else ["HELPDESK_X_ACCOUNT_ID"]
        account = cls(
            account_id=settings.x_account_id or "",
            bearer_token=settings.x_bearer_token,
            consumer_key=settings.x_consumer_key,
            consumer_secret=settings.x_consumer_secret,
            access_token=settings.x_access_token,
            access_token_secret=settings.x_access_token_secret,
            api_url=settings.x_api_url,
            timeout=float(settings.x_timeout_seconds),
            poll_seconds=float(settings.x_poll_seconds),
        )
        if not account.bearer_token and not account.user_context:
            missing.append("HELPDESK_X_BEARER_TOKEN or the four OAuth 1.0a keys (HELPDESK_X_CONSUMER_KEY, …)")
        if missing:
            raise SettingsError(f"X intake needs {', '.join(missing)}")
        return account


class RoutedSession(requests.Session):
    """The requests session under tweepy.Client: sends its calls to ``api_url`` and gives each a timeout.

    tweepy builds every URL from ``https://api.twitter.com`` and passes no timeout;
    OAuth 1.0a signing happens when the request is prepared, after the rewrite,
    so signatures cover the URL actually called.
    """

    def __init__(self, api_url: str, timeout: float) -> None:
        super().__init__()
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if url.startswith(TWEEPY_HOST):
            url = self.api_url + url[len(TWEEPY_HOST):]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().request(method, url, *args, **kwargs)


def make_client(account: XAccount) -> tweepy.Client:
    """A v2 client that answers with raw responses (so the rate-limit headers can be read) and never sleeps."""
    client = tweepy.Client(
        bearer_token=account.bearer_token, consumer_key=account.consumer_key, consumer_secret=account.consumer_secret,
        access_token=account.access_token, access_token_secret=account.access_token_secret,
        return_type=requests.Response, wait_on_rate_limit=False,
    )
    client.session.close()
    client.session = RoutedSession(account.api_url, account.timeout)
    return client


@dataclass(frozen=True)
class RateLimit:
    """The ``x-rate-limit-*`` headers of one answer."""

    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None

    @classmethod
    def from_headers(cls, headers: Any) -> "RateLimit":
        def number(name: str) -> int | None:
            value = headers.get(name)
            try:
                return int(value) if value is not None else None
            except ValueError:
                return None

        reset = number("x-rate-limit-reset")
        return cls(number("x-rate-limit-limit"), number("x-rate-limit-remaining"), float(reset) if reset is not None else None)

    @property
    def exhausted(self) -> bool:
        return self.remaining == 0 and self.reset_at is not None


@dataclass(frozen=True)
class Page:
    """One answer of the v2 API: ``data``, ``includes``, ``meta`` as documented, and its rate-limit headers."""

    data: Any
    includes: dict[str, Any]
    meta: dict[str, Any]
    rate: RateLimit

    @property
    def users(self) -> dict[str, dict[str, Any]]:
        return {str(u["id"]): u for u in self.includes.get("users", []) if isinstance(u, dict) and "id" in u}

    @property
    def items(self) -> list[Any]:
        """``data`` as a list (one object for single-item endpoints); each item still to be checked."""
        return self.data if isinstance(self.data, list) else [] if self.data is None else [self.data]


def _page(method: str, body: Any, rate: RateLimit) -> Page:
    """The documented shape or XUnavailable: ``data`` a list (or one object), ``includes`` and ``meta`` objects."""
    if not isinstance(body, dict):
        raise XUnavailable(f"{method}: the answer is not a JSON object")
    data, includes, meta = body.get("data"), body.get("includes") or {}, body.get("meta") or {}
    if not isinstance(includes, dict) or not isinstance(meta, dict) or not isinstance(data, (list, dict, type(None))):
        raise XUnavailable(f"{method}: the answer does not have the documented data/includes/meta shape")
    if not isinstance(includes.get("users", []), list):
        includes = {**includes, "users": []}
    return Page(data, includes, meta, rate)


class XApi:
    """tweepy.Client calls with errors translated and rate limits remembered per method; never sleeps."""

    def __init__(self, account: XAccount, client: tweepy.Client | None = None, clock: Callable[[], float] = time.time) -> None:
        self.account = account
        self.client = client or make_client(account)
        self.clock = clock
        self.rates: dict[str, RateLimit] = {}

    def call(self, method: str, **params: Any) -> Page:
        try:
            response = getattr(self.client, method)(**params)
        except tweepy.TooManyRequests as exc:  # the headers, not ``exc.reset_time``: that attribute is new in tweepy 4.17
            rate = self.rates[method] = RateLimit.from_headers(exc.response.headers)
            reset = rate.reset_at if rate.reset_at is not None else self.clock() + RATE_LIMIT_FALLBACK_SECONDS
            raise XRateLimited(method, float(reset)) from exc
        except tweepy.TwitterServerError as exc:
            raise XUnavailable(f"{method}: HTTP {exc.response.status_code}") from exc
        except tweepy.HTTPException as exc:
            status = exc.response.status_code
            detail = "; ".join(exc.api_messages) or exc.response.reason or ""
            raise XRefused(f"{method}: HTTP {status} {detail}".strip(), status, tuple(exc.api_codes)) from exc
        except (requests.RequestException, OSError) as exc:  # connection refused or reset, timeout: the outcome is unknown
            raise XUnavailable(f"{method}: {type(exc).__name__}: {exc}") from exc
        rate = RateLimit.from_headers(response.headers)
        self.rates[method] = rate
        try:
            body = response.json() if response.content else {}
        except ValueError as exc:
            raise XUnavailable(f"{method}: the answer is not JSON") from exc
        return _page(method, body, rate)

    def pages(self, method: str, **params: Any) -> Iterator[Page]:
        """Every page of a paginated endpoint, following ``meta.next_token``."""
        token = None
        for _ in range(MAX_PAGES):
            page = self.call(method, pagination_token=token, **params)
            yield page
            token = page.meta.get("next_token")
            if not token:
                return
        raise XUnavailable(f"{method}: more than {MAX_PAGES} pages")

    def close(self) -> None:
        self.client.session.close()


# -- X payloads → InboundMessage ----------------------------------------------------------
def snowflake_time(item_id: int | str) -> datetime:
    """When an X id (tweet, DM event) was made: its top bits are milliseconds since X's epoch."""
    return datetime.fromtimestamp(((int(item_id) >> 22) + TWITTER_EPOCH_MS) / 1000, timezone.utc)


def snowflake_at(moment: float) -> int:
    """The smallest X id made at ``moment`` (epoch seconds): every item made later has a larger id."""
    return max(0, int(moment * 1000) - TWITTER_EPOCH_MS) << 22


def item_id(item: Any) -> int | None:
    """The numeric id of a tweet or DM event, or None when the item is malformed."""
    if not isinstance(item, dict):
        return None
    value = item.get("id")
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).isdigit() or len(str(value)) > 20:
        return None
    return int(value)


def created_time(item: dict[str, Any]) -> datetime:
    value = item.get("created_at")
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)
        except ValueError:
            pass
    return snowflake_time(item["id"])


def _sender(user_id: str, users: dict[str, dict[str, Any]]) -> Party:
    user = users.get(user_id) or {}
    name, username = user.get("name") or "", user.get("username") or ""
    display = f"{name} (@{username})" if name and username else name or (f"@{username}" if username else "")
    return Party(address=user_id, name=display[:512])


def without_leading_mentions(text: str) -> str:
    """A tweet's words without the @handles it starts with (the reply's addressees)."""
    return _LEADING_MENTIONS.sub("", text, count=1).strip()


def tweet_skip_reason(tweet: dict[str, Any], account_id: str) -> str | None:
    """Why a mention is not an enquiry (None: it is one)."""
    if str(tweet.get("author_id")) == account_id:
        return "own post"
    if any(ref.get("type") == "retweeted" for ref in tweet.get("referenced_tweets") or []):
        return "retweet"
    if not without_leading_mentions(html.unescape(tweet.get("text") or "")):
        return "no text"
    return None


def dm_skip_reason(event: dict[str, Any], account_id: str) -> str | None:
    """Why a DM event is not an enquiry (None: it is one)."""
    if event.get("event_type", "MessageCreate") != "MessageCreate":
        return "not a message"
    if str(event.get("sender_id")) == account_id:
        return "own message"
    if not (event.get("text") or "").strip():
        return "no text"
    return None


def tweet_to_inbound(tweet: dict[str, Any], users: dict[str, dict[str, Any]], *, source: str, received_at: datetime | None = None,
                     also_replies_to: tuple[str, ...] = ()) -> InboundMessage:
    """A mention as a message: thread key its X conversation, ``in_reply_to`` the tweet it answers."""
    text = html.unescape(tweet.get("text") or "")[:200_000]  # the v2 API escapes &, < and > in tweet text
    words = without_leading_mentions(text)
    replied_to = [f"tweet:{ref['id']}" for ref in tweet.get("referenced_tweets") or [] if ref.get("type") == "replied_to"]
    conversation = tweet.get("conversation_id") or tweet["id"]
    author = str(tweet.get("author_id") or "")
    return InboundMessage(
        channel=CHANNEL,
        external_id=f"tweet:{tweet['id']}",
        received_at=received_at or datetime.now(timezone.utc),
        sent_at=created_time(tweet),
        sender=_sender(author, users),
        subject=_first_line(words),
        text=text,
        new_text=words,
        thread=ThreadRefs(message_id=f"tweet:{tweet['id']}", in_reply_to=(*replied_to, *also_replies_to),
                          thread_key=f"tweet-conversation:{conversation}"),
        source=source,
        content_hash=content_hash(CHANNEL, "tweet", str(tweet["id"]), author, text),
    )


def dm_to_inbound(event: dict[str, Any], users: dict[str, dict[str, Any]], *, source: str, received_at: datetime | None = None,
                  also_replies_to: tuple[str, ...] = ()) -> InboundMessage:
    """A DM as a message: thread key its DM conversation, so a conversation is one ticket."""
    text = (event.get("text") or "")[:200_000]
    sender = str(event.get("sender_id") or "")
    return InboundMessage(
        channel=CHANNEL,
        external_id=f"dm:{event['id']}",
        received_at=received_at or datetime.now(timezone.utc),
        sent_at=created_time(event),
        sender=_sender(sender, users),
        subject=_first_line(text),
        text=text,
        thread=ThreadRefs(message_id=f"dm:{event['id']}", in_reply_to=also_replies_to,
                          thread_key=f"dm:{event.get('dm_conversation_id') or sender}"),
        source=source,
        content_hash=content_hash(CHANNEL, "dm", str(event["id"]), sender, text),
    )


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")[:120]


def comparable_text(text: str) -> str:
    """Text as X may hand it back: unescaped, links replaced (X shortens them), mentions and spacing ignored, case-folded."""
    text = re.sub(r"https?://\S+", "<link>", html.unescape(text or ""))
    return _SPACE.sub(" ", without_leading_mentions(text)).strip().casefold()


# -- what the adapter remembers besides checkpoints -----------------------------------------
class CrossPosts:
    """Who said what recently, to recognise the same words sent both as a mention and as a DM (a cross-post).

    ``earlier`` records (sender, text) → message id for a week and returns the
    first id recorded for them when that message came by the *other* route
    (a DM for a mention, a mention for a DM). A re-read of the same message finds
    its own id; short texts ("thanks!") are too common to tell anything.
    """

    TTL_SECONDS = 7 * 24 * 3600
    MIN_CHARS = 15

    def __init__(self, client: redis.Redis | None, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
        self.memory: dict[str, str] = {}

    def earlier(self, sender: str, text: str, message_id: str) -> str | None:
        words = comparable_text(text)
        if len(words) < self.MIN_CHARS:
            return None
        digest = hashlib.sha256(f"{sender}\x00{words}".encode("utf-8", "surrogatepass")).hexdigest()[:32]
        if self.client is None:
            first = self.memory.setdefault(digest, message_id)
        else:
            key = f"{self.namespace}:x:said:{digest}"
            if self.client.set(key, message_id, nx=True, ex=self.TTL_SECONDS):
                return None
            first = (self.client.get(key) or b"").decode()
        other_route = first.split(":", 1)[0] != message_id.split(":", 1)[0]
        return first if first and other_route else None


class GapLog:
    """Spans of a stream that X can no longer show us, kept for operators until acknowledged.

    Each gap is kept in Redis (``<ns>:x:gaps``) and written to the adapter health
    entry ``x:<account>:<stream>:gap`` as an error, so `helpdesk status`, the
    metrics and the ops alerts show it; acknowledging writes a success there.
    """

    def __init__(self, client: redis.Redis | None, namespace: str, health: AdapterHealth) -> None:
        self.client = client
        self.namespace = namespace
        self.health = health
        self.memory: list[dict[str, Any]] = []

    @property
    def _key(self) -> str:
        return f"{self.namespace}:x:gaps"

    def record(self, account: str, stream: str, after_id: int, before_id: int, detail: str) -> dict[str, Any]:
        gap = {"account": account, "stream": stream, "after_id": str(after_id), "before_id": str(before_id),
               "from": snowflake_time(after_id).isoformat(), "until": snowflake_time(before_id).isoformat(),
               "detail": detail, "detected_at": time.time(), "acknowledged": False}
        if self.client is not None:
            self.client.rpush(self._key, json.dumps(gap))  # before the checkpoint moves: if this fails, the next poll finds the gap again
        else:
            self.memory.append(gap)
        self.health.error(f"{ADAPTER}:{account}:{stream}:gap", detail)
        log.warning("x gap: items may be missing", account=account, stream=stream, detail=detail)
        return gap

    def all(self) -> list[dict[str, Any]]:
        if self.client is None:
            return list(self.memory)
        return [json.loads(raw) for raw in self.client.lrange(self._key, 0, -1)]

    def open(self) -> list[dict[str, Any]]:
        return [gap for gap in self.all() if not gap["acknowledged"]]

    def acknowledge(self, by: str) -> int:
        """Mark every open gap seen (someone read those mentions or DMs on X); the health problem clears."""
        gaps = self.all()
        opened = [gap for gap in gaps if not gap["acknowledged"]]
        for gap in opened:
            gap.update(acknowledged=True, acknowledged_by=by, acknowledged_at=time.time())
        if self.client is not None and opened:
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(self._key)
            pipe.rpush(self._key, *[json.dumps(gap) for gap in gaps])
            pipe.execute()
        for account, stream in {(gap["account"], gap["stream"]) for gap in opened}:
            self.health.success(f"{ADAPTER}:{account}:{stream}:gap", f"acknowledged by {by}")
        return len(opened)


# -- the adapter ---------------------------------------------------------------------------
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
        self.backoff = Backoff(backoff_min, backoff_max, jitter=0.25)
        self.restart, self.heartbeat_seconds = restart, heartbeat_seconds
        self.streams = (MENTIONS, DMS) if account.user_context else (MENTIONS,)
        self.due: dict[str, float] = dict.fromkeys(self.streams, 0.0)
        self.failures: Counter[str] = Counter()

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
        self.failures[stream] = 0
        self.health.success(name, f"checkpoint={result.checkpoint} read={result.read} enqueued={result.enqueued}")
        rate = self.api.rates.get(_METHODS[stream])
        after_reset = rate.reset_at + 1 if rate is not None and rate.exhausted and rate.reset_at else 0.0
        return self._schedule(stream, result, max(self.clock() + self.account.poll_seconds, after_reset))

    def _failed(self, stream: str, name: str, exc: BaseException) -> PollResult:
        error = f"{type(exc).__name__}: {exc}"
        self.health.error(name, error)
        delay = self.backoff.delay(self.failures[stream])
        self.failures[stream] += 1
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
