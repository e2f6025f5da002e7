"""Worker middleware: structured logging per message, and the dead-letter mirror.

Actors add facts to the log context (ticket, outcome); this middleware writes
one line per message with the message id, queue and duration, so logging is
not sprinkled through the actors.
"""

from __future__ import annotations

import time
import traceback
from datetime import datetime, timezone
from typing import Any

import dramatiq
import structlog
from dramatiq.middleware import Middleware

from intake.base import Rejected
from intake.errors import MessageDecodeError
from intake.message import InboundMessage
from intake.queue import PROCESS_ACTOR, InflightRegistry, message_ids
from storage.intake_store import IntakeStore

log = structlog.get_logger("helpdesk.worker")
MAX_PAYLOAD_CHARS = 1_000_000


class LogContext(Middleware):
    """Binds message id, queue and actor to every log line of a message; logs its outcome."""

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            message_id=message.message_id, queue=message.queue_name, actor=message.actor_name, started=time.monotonic()
        )

    def after_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message, *, result=None, exception=None) -> None:
        context = structlog.contextvars.get_contextvars()
        elapsed_ms = round((time.monotonic() - context.get("started", time.monotonic())) * 1000, 1)
        structlog.contextvars.unbind_contextvars("started")
        retries = message.options.get("retries", 0)
        if exception is None:
            log.info("message processed", duration_ms=elapsed_ms, retries=retries)
        elif isinstance(exception, dramatiq.Retry):
            log.info("message deferred", reason=str(exception), duration_ms=elapsed_ms, retries=retries)
        else:
            log.warning("message failed", error=f"{type(exception).__name__}: {exception}", dead_lettered=message.failed, retries=retries)
        structlog.contextvars.clear_contextvars()


class DeadLetters(Middleware):
    """Mirrors every dead-lettered message into the ``quarantine`` table, with its reason and traceback.

    Redis forgets dead letters after a week; the database does not. A failed
    intake message also releases its in-flight mark, so replies stop waiting for it.
    """

    def __init__(self, store: IntakeStore, inflight: InflightRegistry | None = None) -> None:
        self.store = store
        self.inflight = inflight

    def after_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message, *, result=None, exception=None) -> None:
        if exception is not None and message.failed:
            self._record(message, exception)

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        if message.failed:
            self._record(message, None)

    def _record(self, message: dramatiq.Message, exception: BaseException | None) -> None:
        reason = type(exception).__name__ if exception is not None else "skipped"
        detail = "".join(traceback.format_exception(exception))[-20000:] if exception is not None else "message skipped (expired)"
        payload = message.asdict()
        payload["args"] = [a[:MAX_PAYLOAD_CHARS] if isinstance(a, str) else a for a in payload.get("args", [])]
        channel, source = _describe(message)
        try:
            with self.store.transaction() as tx:
                tx.quarantine(
                    {
                        "key": f"dead_letter:{message.message_id}",
                        "kind": "dead_letter",
                        "queue": message.queue_name,
                        "message_id": message.message_id,
                        "channel": channel,
                        "reason": reason[:100],
                        "detail": f"{exception}\n\n{detail}" if exception is not None else detail,
                        "source": source,
                        "payload": payload,
                        "received_at": datetime.fromtimestamp(message.message_timestamp / 1000, timezone.utc),
                        "created_at": datetime.now(timezone.utc),
                    }
                )
        except Exception:  # noqa: BLE001 - the mirror must never take the worker down; Redis still holds the letter
            log.exception("could not mirror dead letter", dead_letter=message.message_id)
        self._release(message)

    def _release(self, message: dramatiq.Message) -> None:
        if self.inflight is None or message.actor_name != PROCESS_ACTOR or not message.args:
            return
        try:
            inbound = InboundMessage.from_json(message.args[0])
            self.inflight.clear(inbound.channel, message_ids(inbound))
        except Exception:  # noqa: BLE001 - undecodable payloads hold no marks
            pass


def _describe(message: dramatiq.Message) -> tuple[str | None, str]:
    """Channel and source of a queued intake payload, when it can be read."""
    if not message.args or not isinstance(message.args[0], str):
        return None, ""
    for model in (InboundMessage, Rejected):
        try:
            decoded: Any = model.from_json(message.args[0])
            return decoded.channel, decoded.source
        except MessageDecodeError:
            continue
    return None, ""
