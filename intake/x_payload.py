"""X payloads → InboundMessage: a mention (a tweet) or a DM event as one message, and which of them are no enquiry.

Threading: a tweet's thread key is its X conversation (``tweet-conversation:<id>``)
and its ``in_reply_to`` the tweet it answers; a DM's thread key is its DM
conversation (``dm:<dm_conversation_id>``), so every DM of a conversation joins
one ticket. Message ids are ``tweet:<id>`` and ``dm:<event id>`` (channel ``x``),
the dedupe key of each item.

Not enquiries (``tweet_skip_reason``, ``dm_skip_reason``): retweets, our own
tweets and DMs, and items without words once the @handles they start with are
left aside. ``comparable_text`` is a text as X may hand it back, to recognise
the same words (a cross-post, or our own reply found again on retry).

The functions here raise ``KeyError``, ``TypeError``, ``ValueError`` or
pydantic's ``ValidationError`` for an item whose fields have the wrong types;
the caller decides (the adapter quarantines the item).
"""

from __future__ import annotations

import html
import re
from datetime import datetime, timezone
from typing import Any

from intake.message import InboundMessage, Party, ThreadRefs, content_hash
from intake.x_api import created_time

CHANNEL = "x"
_LEADING_MENTIONS = re.compile(r"^(?:\s*@\w{1,15})+\s*")
_SPACE = re.compile(r"\s+")


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
