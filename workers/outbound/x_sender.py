"""Replies on X: a direct message to the enquirer, or a reply tweet when the staff say so.

Routes:
- a staff reply goes as a DM to the enquirer (anything private stays private);
- a reply whose text starts with ``public:`` goes, without that prefix, as a reply
  tweet to the enquirer's latest tweet on the ticket — split into a numbered thread
  (``… (1/3)``) when it is longer than 280 weighted characters, refused when even
  ``MAX_THREAD`` tweets cannot hold it;
- an acknowledgement answers the way the enquirer's latest message came (a DM for
  a DM, a reply tweet for a mention), since X users who mention us need not
  accept DMs from us.

Delivery semantics: at most once per reply. A retry — the outbox row's second
attempt, or a message left ``sending`` by a worker that died — first reads our
own timeline (replies) or the DM conversation (DMs) from the row's creation on
and counts what matches the reply's text as already sent; a thread resumes
after its last tweet found. The X ids sent are recorded on the message row
(``message_id`` the newest, ``refs`` all of them, ``thread_key`` the X thread),
so the enquirer's answer threads back onto the ticket.

Errors: a rate limit raises ``XRateLimitedSend`` (a ``RetryLater``: a delayed
retry, no sleeping thread); any other 4xx — and a reply that cannot be sent as
asked — raises ``XSendRefused`` (an ``EffectRefused``: the message fails,
visible to staff); network errors, timeouts and 5xx raise
``intake.errors.XUnavailable`` and are retried (with the check above).

The X API client is ``intake.x_api``'s, shared with X intake (this module uses
no part of the intake adapter); the ticket's rows are read and written through
``storage.x_replies``.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from config.settings import Settings, XSettings
from intake.x_api import XAccount, XApi, created_time, item_id
from intake.errors import XRateLimited, XRefused
from intake.x_payload import comparable_text
from storage.x_replies import Enquirer, enquirer_of, record_sent
from workers.errors import XRateLimitedSend, XSendRefused

PUBLIC_PREFIX = "public:"
TWEET_LIMIT = 280
DM_LIMIT = 10_000
MAX_THREAD = 5
URL_WEIGHT = 23
LOOKBACK = timedelta(minutes=2)  # clocks differ: look a little before the outbox row was made
LOOKUP_PAGES = 5
_URL = re.compile(r"https?://\S+|(?<![@\w.])(?:[a-z0-9-]+\.)+(?:com|org|net|gov|edu|int|io|info|co|uk|eu)(?:/\S*)?", re.IGNORECASE)
_LIGHT = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))  # twitter-text v3: these weigh 1, everything else 2


def weighted_length(text: str) -> int:
    """The length X counts (twitter-text v3): each link 23, most Latin and punctuation 1, other characters 2.

    Emoji sequences count 2 per code point here (X counts 2 per sequence): an
    overestimate, so a text this accepts is never too long for X.
    """
    text = unicodedata.normalize("NFC", text)
    links = len(_URL.findall(text))
    rest = _URL.sub("", text)
    return URL_WEIGHT * links + sum(1 if any(low <= ord(ch) <= high for low, high in _LIGHT) else 2 for ch in rest)


def split_thread(text: str, limit: int = TWEET_LIMIT, max_parts: int = MAX_THREAD) -> list[str] | None:
    """``text`` as tweets of at most ``limit`` weighted characters, numbered ``(i/n)`` when more than one; None if > max_parts."""
    text = text.strip()
    if weighted_length(text) <= limit:
        return [text]
    room = limit - weighted_length(f" ({max_parts}/{max_parts})")
    parts: list[str] = []
    current = ""
    for token in _tokens(text, room):
        candidate = current + token
        if current.strip() and weighted_length(candidate.strip()) > room:
            parts.append(current.strip())
            candidate = token.lstrip()
        current = candidate
    if current.strip():
        parts.append(current.strip())
    if len(parts) > max_parts:
        return None
    return [f"{part} ({i}/{len(parts)})" for i, part in enumerate(parts, 1)]


def _tokens(text: str, room: int) -> list[str]:
    """Words with the space before them; a word longer than ``room`` cut into pieces that fit."""
    tokens: list[str] = []
    for token in re.findall(r"\s*\S+", text):
        while weighted_length(token.strip()) > room:
            cut = room
            while weighted_length(token.strip()[:cut]) > room:
                cut -= 1
            head, token = token.strip()[:cut], " " + token.strip()[cut:]
            tokens.append(" " + head)
        tokens.append(token)
    return tokens


class XSender:
    """The X channel's sender for ``Effects.senders["x"]``."""

    detects_earlier_sends = True

    def __init__(self, engine: Engine, api: XApi, account_id: str, *, clock: Callable[[], float] = time.time,
                 max_parts: int = MAX_THREAD) -> None:
        self.engine = engine
        self.api = api
        self.account_id = account_id
        self.clock = clock
        self.max_parts = max_parts

    @classmethod
    def from_group(cls, engine: Engine, x: XSettings) -> "XSender | None":
        """None without the account id and the four OAuth 1.0a user-context keys (posting and DMs need them): with a
        bearer token only, X replies wait, queued (a half-configured X stops the worker at start: ``config.settings.require``)."""
        if not x.can_send:
            return None
        return cls(engine, XApi(XAccount.from_group(x)), x.account_id)  # type: ignore[arg-type]

    @classmethod
    def from_settings(cls, engine: Engine, settings: Settings) -> "XSender | None":
        """``from_group`` for callers holding the whole settings."""
        return cls.from_group(engine, settings.x)

    def __call__(self, message: Any, ticket: Any, item: Any) -> dict[str, Any]:
        enquirer = enquirer_of(self.engine, ticket.id)
        if enquirer is None:
            raise XSendRefused(f"ticket {ticket.id} has no message from anyone on X to answer")
        text = message.text or ""
        public = text.lstrip().lower().startswith(PUBLIC_PREFIX)
        if public:
            text = text.lstrip()[len(PUBLIC_PREFIX):]
        elif message.kind == "acknowledgement" and not enquirer.latest_is_dm and enquirer.latest_tweet:
            public = True  # answer a mention where it was made: its author may not accept our DMs
        if not text.strip():
            raise XSendRefused("the reply is empty")
        check_first = item.attempts > 1 or message.status == "sending"
        since = item.created_at - LOOKBACK
        try:
            if public:
                return self._tweet(message, enquirer, text, since if check_first else None)
            return self._dm(message, enquirer, text.strip(), since if check_first else None)
        except XRateLimited as exc:
            raise XRateLimitedSend(max(1.0, exc.reset_at - self.clock()), f"X rate limit: {exc}") from exc
        except XRefused as exc:
            raise XSendRefused(_refusal(exc)) from exc

    # -- DMs --------------------------------------------------------------------------------
    def _dm(self, message: Any, enquirer: Enquirer, text: str, since: datetime | None) -> dict[str, Any]:
        if len(text) > DM_LIMIT:
            raise XSendRefused(f"the reply has {len(text)} characters; an X direct message holds at most {DM_LIMIT}")
        found = self._find_dm(enquirer.user_id, text, since) if since is not None else None
        if found is not None:
            event_id, conversation = found
        else:
            page = self.api.call("create_direct_message", participant_id=enquirer.user_id, text=text, user_auth=True)
            data = page.data if isinstance(page.data, dict) else {}
            event_id, conversation = str(data.get("dm_event_id") or ""), str(data.get("dm_conversation_id") or "")
        record_sent(self.engine, message.id, [f"dm:{event_id}"], f"dm:{conversation}" if conversation else None,
                    sender=self.account_id, to=enquirer.user_id)
        return {"route": "dm", "to": enquirer.user_id, "dm_event_id": event_id, "dm_conversation_id": conversation,
                "found_existing": found is not None}

    def _find_dm(self, user_id: str, text: str, since: datetime) -> tuple[str, str] | None:
        """Our DM with this text to ``user_id`` sent after ``since``: (event id, conversation id), or None."""
        wanted = comparable_text(text)
        pages = self.api.pages("get_direct_message_events", participant_id=user_id, event_types="MessageCreate", max_results=100,
                               dm_event_fields=["id", "text", "sender_id", "created_at", "dm_conversation_id"], user_auth=True)
        for _, page in zip(range(LOOKUP_PAGES), pages):
            for event in page.items:
                if item_id(event) is None:
                    continue
                if created_time(event) < since:
                    return None  # newest first: everything further down is older
                if str(event.get("sender_id")) == self.account_id and comparable_text(event.get("text") or "") == wanted:
                    return str(event["id"]), str(event.get("dm_conversation_id") or "")
        return None

    # -- reply tweets -----------------------------------------------------------------------
    def _tweet(self, message: Any, enquirer: Enquirer, text: str, since: datetime | None) -> dict[str, Any]:
        if enquirer.latest_tweet is None:
            raise XSendRefused("the enquirer has no tweet on this ticket to reply to: send it as a DM (without 'public:')")
        parts = split_thread(text, max_parts=self.max_parts)
        if parts is None:
            raise XSendRefused(f"the reply weighs {weighted_length(text)} characters: more than {self.max_parts} tweets of "
                               f"{TWEET_LIMIT}; shorten it, or send it as a DM (without 'public:')")
        sent = self._find_thread(enquirer.latest_tweet, parts, since) if since is not None else []
        found = len(sent)
        for part in parts[found:]:
            page = self.api.call("create_tweet", text=part, in_reply_to_tweet_id=sent[-1] if sent else enquirer.latest_tweet,
                                 user_auth=True)
            tweet_id = item_id(page.data)
            if tweet_id is None:
                raise XSendRefused(f"X accepted the tweet but returned no id (answer: {str(page.data)[:200]})")
            sent.append(str(tweet_id))
        record_sent(self.engine, message.id, [f"tweet:{i}" for i in sent], enquirer.conversation_key,
                    sender=self.account_id, to=enquirer.user_id)
        return {"route": "tweet", "in_reply_to": enquirer.latest_tweet, "tweet_ids": sent, "found_existing": found}

    def _find_thread(self, reply_to: str, parts: list[str], since: datetime) -> list[str]:
        """Ids of the leading parts already on our timeline, each replying to the one before (the first to ``reply_to``)."""
        ours: dict[str, dict[str, Any]] = {}  # the tweet each of our recent tweets answers → that tweet
        pages = self.api.pages("get_users_tweets", id=self.account_id, start_time=since, max_results=100,
                               tweet_fields=["created_at", "referenced_tweets", "conversation_id"], user_auth=True)
        for _, page in zip(range(LOOKUP_PAGES), pages):
            for tweet in page.items:
                parent = next((str(r.get("id")) for r in tweet.get("referenced_tweets") or [] if isinstance(r, dict)
                               and r.get("type") == "replied_to"), None) if item_id(tweet) is not None else None
                if parent is not None:
                    ours.setdefault(parent, tweet)
        sent: list[str] = []
        parent = reply_to
        for part in parts:
            tweet = ours.get(parent)
            if tweet is None or comparable_text(tweet.get("text") or "") != comparable_text(part):
                break
            parent = str(tweet["id"])
            sent.append(parent)
        return sent


def _refusal(exc: XRefused) -> str:
    text = str(exc)
    if "duplicate content" in text:
        return f"X refused an identical tweet we posted before; reword the reply ({text})"
    if exc.status in (401, 403) and ("authentication" in text.lower() or exc.status == 401):
        return f"X refused our credentials: the app needs OAuth 1.0a user context with read, write and DM permission ({text})"
    return f"X refused the reply: {text}"
