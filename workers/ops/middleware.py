"""Worker middleware: structured logging per message, the dead-letter mirror, and the outage gate.

Actors add facts to the log context (ticket, outcome); this middleware writes
one line per message with the message id, queue and duration, so logging is
not sprinkled through the actors.

``Outages`` pauses the whole worker while Redis or the database is
unreachable: the first message that meets the outage (``ServiceUnavailable``)
closes the gate, every worker thread then waits before its next message, and
one thread checks the service with bounded exponential backoff until it
answers. A 20-second outage costs a handful of failed attempts, not thousands,
and no message burns its retries on it.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import dramatiq
import structlog
from dramatiq.middleware import Middleware

from config.errors import ServiceUnavailable
from intake.base import Rejected
from intake.errors import MessageDecodeError
from intake.message import InboundMessage
from config.queues import PROCESS_ACTOR, PROCESS_BATCH_ACTOR
from intake.queue import InflightRegistry, message_ids
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
        elif isinstance(exception, ServiceUnavailable):
            log.warning("message put back: service unavailable", reason=str(exception), duration_ms=elapsed_ms)
        else:
            log.warning("message failed", error=f"{type(exception).__name__}: {exception}", dead_lettered=message.failed, retries=retries)
        structlog.contextvars.clear_contextvars()


class Outages(Middleware):
    """Pauses consumption while a service the actors need is unreachable.

    ``probes`` maps a component (``redis``, ``database``) to a call that raises
    while it is down. Add it first (before ``TimeLimit``): a thread waiting at
    the gate has not started its message, so no time limit runs against it.
    """

    MIN_DELAY = 0.25

    def __init__(self, probes: dict[str, Callable[[], object]], *, max_delay: float = 30.0) -> None:
        self.probes = probes
        self.max_delay = max_delay
        self._down: dict[str, tuple[float, str]] = {}  # component -> (since, last error)
        self._lock = threading.Lock()
        self._probing = threading.Lock()
        self._open = threading.Event()
        self._open.set()
        self._stopping = threading.Event()
        self.outages = 0  # how many times the gate closed (for tests and logs)

    @property
    def down(self) -> dict[str, str]:
        with self._lock:
            return {component: error for component, (_, error) in self._down.items()}

    def mark_down(self, component: str, detail: str) -> None:
        with self._lock:
            if component not in self._down:
                self.outages += 1
                log.warning("service unreachable: pausing this worker", component=component, error=detail[:300])
            self._down[component] = (self._down.get(component, (time.monotonic(), ""))[0], detail)
            self._open.clear()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stopping.set()
        self._open.set()

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        while not self._open.is_set() and not self._stopping.is_set():
            if self._probing.acquire(blocking=False):
                try:
                    self._probe_until_up()
                finally:
                    self._probing.release()
            else:
                self._open.wait(1.0)

    def after_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message, *, result=None, exception=None) -> None:
        if isinstance(exception, ServiceUnavailable) and exception.component in self.probes:
            self.mark_down(exception.component, exception.detail)

    def _probe_until_up(self) -> None:
        delay = self.MIN_DELAY
        while not self._stopping.is_set():
            for component, (since, _) in list(self._down.items()):
                try:
                    self.probes[component]()
                except Exception as exc:  # noqa: BLE001 - any failure of the probe means still down
                    with self._lock:
                        self._down[component] = (since, f"{type(exc).__name__}: {exc}")
                    continue
                with self._lock:
                    self._down.pop(component, None)
                log.warning("service reachable again: resuming", component=component,
                            down_seconds=round(time.monotonic() - since, 1))
            with self._lock:
                if not self._down:
                    self._open.set()
                    return
            self._stopping.wait(delay)
            delay = min(self.max_delay, delay * 2)


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
        if self.inflight is None or message.actor_name not in (PROCESS_ACTOR, PROCESS_BATCH_ACTOR):
            return
        for payload in message.args:  # a batch holds one message per argument
            try:
                inbound = InboundMessage.from_json(payload)
                self.inflight.clear(inbound.channel, message_ids(inbound))
            except Exception:  # noqa: BLE001 - undecodable payloads hold no marks
                continue


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
