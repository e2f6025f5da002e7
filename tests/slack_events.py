"""Sending what Slack sends — events, interactivity, slash commands — to our app, signed as Slack signs them."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from typing import Any
from urllib.parse import urlencode

import httpx

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
_ids = itertools.count(1)


def sign(body: bytes, timestamp: int, secret: str = SIGNING_SECRET) -> str:
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


class SlackSender:
    def __init__(self, url: str, secret: str = SIGNING_SECRET) -> None:
        self.url = f"{url}/slack/events"
        self.secret = secret

    def raw(self, body: bytes, content_type: str, *, timestamp: int | None = None, signature: str | None = None,
            retry: int | None = None) -> httpx.Response:
        timestamp = int(time.time()) if timestamp is None else timestamp
        headers = {"Content-Type": content_type, "X-Slack-Request-Timestamp": str(timestamp),
                   "X-Slack-Signature": signature or sign(body, timestamp, self.secret)}
        if retry is not None:
            headers.update({"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"})
        return httpx.post(self.url, content=body, headers=headers, timeout=10)

    def event(self, event: dict[str, Any], *, event_id: str | None = None, retry: int | None = None) -> httpx.Response:
        """An Events API delivery; a retry is the same body signed again, seconds later (as Slack does)."""
        body = {"token": "unused", "team_id": "T0001", "api_app_id": "A0001", "type": "event_callback",
                "event_id": event_id or f"Ev{next(_ids):08d}", "event_time": int(float(event.get("event_ts", time.time()))), "event": event}
        later = int(time.time()) + 3 * retry if retry else None
        return self.raw(json.dumps(body).encode(), "application/json", retry=retry, timestamp=later)

    def action(self, user: str, action: dict[str, Any]) -> httpx.Response:
        action = {"block_id": "b", "action_ts": f"{time.time():.6f}", **action}
        payload = {"type": "block_actions", "user": {"id": user}, "trigger_id": f"trig{next(_ids)}", "actions": [action],
                   "container": {"type": "message"}}
        return self.raw(urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded")

    def command(self, user: str, text: str) -> httpx.Response:
        form = {"command": "/helpdesk", "text": text, "user_id": user, "channel_id": "C0", "trigger_id": f"trig{next(_ids)}",
                "response_url": "http://127.0.0.1:9/unused"}
        return self.raw(urlencode(form).encode(), "application/x-www-form-urlencoded")


def message(channel: str, user: str, text: str, ts: str | None = None, thread_ts: str | None = None, **extra: Any) -> dict[str, Any]:
    ts = ts or f"{time.time():.6f}"
    event = {"type": "message", "channel": channel, "user": user, "text": text, "ts": ts, "event_ts": ts,
             "channel_type": "im" if channel.startswith("D") else "channel", **extra}
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event
