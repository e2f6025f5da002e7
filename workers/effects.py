"""Carrying out outbox rows: one handler per kind, each idempotent.

Errors, by kind: ``RateLimited`` → the row goes back to pending and the
caller retries after Slack's delay; ``SlackUnavailable`` (network, 5xx) → back
to pending, retried with backoff, and the retry checks whether the post went
out before; ``SlackRefused`` → the row fails, with Slack's error visible.
Without a Slack token Slack rows complete as skipped (the embedded demo).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from storage import outbox
from storage.intake_store import TICKET
from storage.models import utcnow
from storage.outbox import OutboxItem
from workers.desk import Desk, assign
from workers.slack import SlackPoster, SlackRefused


class Effects:
    def __init__(self, engine: Engine, desk: Desk, poster: SlackPoster | None, clock: Callable[[], datetime] = utcnow) -> None:
        self.engine = engine
        self.desk = desk
        self.poster = poster
        self.clock = clock
        self.handlers: dict[str, Callable[[OutboxItem], dict[str, Any]]] = {
            "assign": self._assign,
            "slack_post": self._slack_post,
            "slack_card": self._slack_card,
        }

    def run(self, key: str) -> dict[str, Any] | None:
        """Carry out one row; None when it is not (or no longer) ours to do. Raises for the caller to retry.

        A result's ``effects`` are outbox keys the handler created: the caller enqueues them.
        """
        item = outbox.claim(self.engine, key, self.clock())
        if item is None:
            return None
        handler = self.handlers.get(item.kind)
        if handler is None:
            outbox.release(self.engine, key, f"no handler for kind {item.kind!r}", final=True)
            return None
        try:
            result = handler(item)
        except SlackRefused as exc:
            outbox.release(self.engine, key, str(exc), final=True)
            return {"failed": str(exc)}
        except Exception as exc:
            outbox.release(self.engine, key, f"{type(exc).__name__}: {exc}")
            raise
        outbox.complete(self.engine, key, result)
        return result

    # -- handlers ---------------------------------------------------------------------
    def _assign(self, item: OutboxItem) -> dict[str, Any]:
        result = assign(self.engine, self.desk, item.ticket_id, self.clock())  # type: ignore[arg-type]
        return {"outcome": result.outcome, "member": result.member, "reasons": list(result.reasons), "effects": list(result.effects)}

    def _slack_post(self, item: OutboxItem) -> dict[str, Any]:
        if self.poster is None:
            return {"skipped": "Slack is not configured"}
        payload = item.payload
        posted = self.poster.post(item.key, payload["channel"], payload["text"], payload.get("blocks"),
                                  thread_ts=payload.get("thread_ts"), check_first=item.attempts > 1, since=item.created_at.timestamp())
        return {"channel": posted.channel, "ts": posted.ts, "found_existing": posted.found_existing}

    def _slack_card(self, item: OutboxItem) -> dict[str, Any]:
        if self.poster is None:
            return {"skipped": "Slack is not configured"}
        with self.engine.connect() as c:
            ticket = c.execute(select(TICKET).where(TICKET.c.id == item.ticket_id)).first()
        team = self.desk.team(ticket.team) if ticket is not None else None
        if ticket is None or team is None or not team.slack_channel:
            return {"skipped": "no team channel"}
        from workers.cards import card  # noqa: PLC0415 - the card layout lives with the Slack interactions

        text, blocks = card(ticket, self.desk)
        posted = self.poster.post(item.key, team.slack_channel, text, blocks, check_first=item.attempts > 1,
                                  since=item.created_at.timestamp())
        return {"channel": posted.channel, "ts": posted.ts, "found_existing": posted.found_existing}
