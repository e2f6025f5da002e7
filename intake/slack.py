"""Slack as a channel: verifying what Slack sends and handing it to the workers.

Every request to ``/slack/events`` is checked with slack_sdk's
``SignatureVerifier`` on the raw body (HMAC-SHA256, constant-time compare,
timestamps older than five minutes refused) and against a replay guard: a
signature already seen is refused, so a captured request cannot be sent
again. Slack's own retries carry fresh timestamps and signatures and pass; the
worker recognises them by ``event_id``.

Turning a verified event into an InboundMessage is ``intake.slack_payload``
(the worker does it, with the user's profile in hand).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import redis
from slack_sdk.signature import SignatureVerifier

from config import queues

if TYPE_CHECKING:
    import dramatiq

MAX_BODY_BYTES = 1_000_000
MAX_TIMESTAMP_DIGITS = 12  # seconds since 1970 stay at 10 digits until the year 2286
REPLAY_WINDOW_SECONDS = 360


class SlackRequestVerifier:
    """Signature, age and replay checks for requests from Slack."""

    def __init__(self, signing_secret: str, client: redis.Redis | None, namespace: str) -> None:
        self.verifier = SignatureVerifier(signing_secret)
        self.client = client
        self.namespace = namespace

    def verify(self, body: bytes, headers: dict[str, str]) -> str | None:
        """None when the request is genuine and fresh; otherwise why it is refused."""
        if len(body) > MAX_BODY_BYTES:
            return "body too large"
        timestamp = headers.get("x-slack-request-timestamp", "")
        signature = headers.get("x-slack-signature", "")
        if not timestamp or not signature:
            return "unsigned"
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= MAX_TIMESTAMP_DIGITS):
            return "malformed timestamp"
        try:
            body.decode("utf-8")  # Slack signs UTF-8 text; the SDK would raise on anything else
        except UnicodeDecodeError:
            return "malformed body"
        if not self.verifier.is_valid(body, timestamp, signature):
            return "bad signature or stale timestamp"
        if self.client is not None and not self.client.set(f"{self.namespace}:slack-seen:{signature}", 1, nx=True, ex=REPLAY_WINDOW_SECONDS):
            return "replayed request"
        return None


def enqueue(broker: "dramatiq.Broker", kind: str, payload: dict[str, Any]) -> None:
    """Hand a verified event or action to the workers; returns once Redis has it (then Slack may have its 200)."""
    queues.enqueue(broker, queues.SLACK_QUEUE, queues.SLACK_ACTOR, kind, json.dumps(payload))
