"""Slack message events as InboundMessages: pure conversion, shared by the worker that handles Slack's events.

A message's identity is (channel, ts); its thread key is (channel, thread_ts
or ts), so replies in a Slack thread join the ticket its first message opened.

An event that cannot become a message (a field missing or of the wrong type,
anything its conversion raises) raises ``MessageDecodeError`` with the cause:
invalid input, never retried — the worker dead-letters it with the reason,
where operators see it (``helpdesk dlq list``), and goes on with the next.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from intake.errors import MessageDecodeError
from intake.message import InboundMessage, Party, ThreadRefs, content_hash

_MENTION = re.compile(r"<@([A-Z0-9]+)(?:\|([^>]+))?>")
_LINK = re.compile(r"<(https?://[^|>]+)\|([^>]+)>|<(https?://[^>]+)>|<mailto:[^|>]+\|([^>]+)>")


def is_message_from_a_person(event: dict[str, Any], bot_user_id: str | None) -> bool:
    if event.get("type") != "message" or event.get("bot_id") or event.get("subtype") in ("bot_message", "message_changed",
                                                                                          "message_deleted", "channel_join",
                                                                                          "channel_leave", "message_replied"):
        return False
    return bool(event.get("user")) and event.get("user") != bot_user_id


def plain_text(text: str, names: dict[str, str] | None = None) -> str:
    """Slack mrkdwn to readable text: <@U1> → @name, <url|label> → label (url)."""
    def mention(match: re.Match[str]) -> str:
        return "@" + ((names or {}).get(match.group(1)) or match.group(2) or match.group(1))

    def link(match: re.Match[str]) -> str:
        if match.group(1):
            return f"{match.group(2)} ({match.group(1)})"
        return match.group(3) or match.group(4) or ""

    text = _MENTION.sub(mention, text or "")
    text = _LINK.sub(link, text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def message_to_inbound(event: dict[str, Any], *, user_name: str, user_email: str | None, received_at: datetime | None = None,
                       event_id: str | None = None) -> InboundMessage:
    """The message event as an InboundMessage; ``MessageDecodeError`` (with the cause) when it cannot be one."""
    try:
        return _message_to_inbound(event, user_name=user_name, user_email=user_email, received_at=received_at)
    except MessageDecodeError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever one event does, it is that event's failure: quarantined, not retried
        where = f"event {event_id}" if event_id else "event"
        raise MessageDecodeError(f"slack {where} cannot become a message: {type(exc).__name__}: {str(exc)[:300]}") from exc


def _message_to_inbound(event: dict[str, Any], *, user_name: str, user_email: str | None, received_at: datetime | None) -> InboundMessage:
    channel = event["channel"]
    ts = event["ts"]
    thread_ts = event.get("thread_ts") or ts
    text = plain_text(event.get("text", ""))[:200_000]
    first_line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    sent_at = datetime.fromtimestamp(float(ts), timezone.utc)
    return InboundMessage(
        channel="slack",
        external_id=f"{channel}:{ts}",
        received_at=received_at or datetime.now(timezone.utc),
        sent_at=sent_at,
        sender=Party(address=event["user"], name=user_name),
        identities={"email": user_email.lower()} if user_email else {},
        subject=first_line[:120],
        text=text,
        thread=ThreadRefs(message_id=f"{channel}:{ts}", thread_key=f"{channel}:{thread_ts}"),
        source=f"slack:{channel}:{ts}",
        content_hash=content_hash(channel, ts, event["user"], text),
    )
