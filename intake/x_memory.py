"""What the X adapter remembers in Redis besides its checkpoints: recent words (cross-posts) and gaps.

Both keep to memory without a Redis client (tests, the demo).

- ``CrossPosts``: who said what in the last week, so the same words sent by the
  same person both as a mention and as a DM thread onto the first one's ticket.
- ``GapLog``: spans of a stream that X can no longer show us (the mentions
  timeline reaches only the newest 800 mentions, DM events the last 30 days),
  kept until an operator acknowledges them; each is also an error in the health
  record ``x:<account>:<stream>:gap``, so `helpdesk status` and the alerts show it.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import redis
import structlog

from intake.state import AdapterHealth
from intake.x_api import snowflake_time
from intake.x_payload import comparable_text

log = structlog.get_logger("helpdesk.x")

ADAPTER = "x"  # the adapter's name in checkpoints and health records


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
