"""What keeps an adapter reading when one item, or its own loop, goes wrong.

Three kinds of failure, handled at three levels:

- *transport* (the network, the queue: ``SinkError``, the raw archive's
  ``OSError``): the adapter keeps its watermark and tries again after a
  ``Backoff``;
- *one item's* (anything else raised while turning one item into an
  InboundMessage — a parser bug, a ``RecursionError``, a payload nobody
  foresaw): that item is quarantined through ``Sink.reject`` with reason
  ``adapter_error`` and the exception in the detail, and the adapter goes on
  with the next one; its watermark moves past it (``ingest_isolated``,
  ``failure_detail``; ``ingest_many_isolated`` for a batch, which falls back to
  one item at a time to find the one at fault);
- *the loop's own* (an exception escaping an adapter's loop): ``supervise``
  records the crash in the adapter's health record (``restarts``,
  ``last_crash``), waits a bounded exponential backoff and starts the loop
  again.

While its thread lives, every supervised loop's health record gets a
``running`` heartbeat every few seconds, and ``stopped_at`` when it is stopped
on purpose; a heartbeat that goes stale without a stop means the process died
(``workers.ops.health`` reports it). Restarts wait as ``Backoff`` says, which is
``intake.backoff``'s policy (tenacity's strategies), the same as reconnects and failed polls.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from intake.archive import sha256_hex
from intake.backoff import FailureStreak, backoff
from intake.errors import SinkError
from intake.state import AdapterHealth

if TYPE_CHECKING:
    from intake.email_intake import EmailIngestor

log = structlog.get_logger("helpdesk.supervision")
ADAPTER_ERROR = "adapter_error"
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (SinkError, OSError)
_TRACEBACK_CHARS = 1500


@dataclass(frozen=True)
class Backoff:
    """Exponential delays with jitter, bounded by ``maximum``: ``minimum × 2^failures × uniform(1 ± jitter)``."""

    minimum: float = 1.0
    maximum: float = 60.0
    jitter: float = 0.5

    def delay(self, failures: int) -> float:
        """The wait before the next restart after ``failures`` restarts in a row (0: the shortest)."""
        streak = FailureStreak(backoff(self.minimum, self.maximum, self.jitter))
        return streak.delay_after(min(failures, 32) + 1)


def failure_detail(exc: BaseException) -> str:
    """``ExcType: message`` and the innermost frames of the traceback, short enough for a quarantine record."""
    head = f"{type(exc).__name__}: {str(exc)[:300]}"
    frames = traceback.format_tb(exc.__traceback__)[-4:]
    return (head + "\n" + "".join(frames)[-_TRACEBACK_CHARS:]).strip() if frames else head


def ingest_isolated(ingestor: "EmailIngestor", raw: bytes, source: str) -> bool:
    """``ingestor.ingest``, with one item's unexpected failure quarantined (False) instead of raised.

    Transport failures still raise, so that the caller keeps its watermark and retries.
    """
    try:
        return ingestor.ingest(raw, source)
    except TRANSPORT_ERRORS:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever one item does, the items behind it are read
        data = bytes(raw) if isinstance(raw, (bytes, bytearray, memoryview)) else b""  # a server may answer NIL for a body
        raw_ref = ingestor.archive.put(data) if data and len(data) <= ingestor.limits.max_raw_bytes else None
        ingestor.reject(raw_ref or sha256_hex(data or source.encode()), ADAPTER_ERROR, failure_detail(exc), source, raw_ref)
        log.warning("item quarantined after an unexpected failure", source=source, error=f"{type(exc).__name__}: {str(exc)[:200]}")
        return False


def ingest_many_isolated(ingestor: "EmailIngestor", items: Sequence[tuple[bytes, str]]) -> list[bool]:
    """``ingestor.ingest_many``; should the batch fail unexpectedly, its items are ingested again one by one
    (``ingest_isolated``), so that only the item at fault is quarantined. Transport failures raise."""
    try:
        return ingestor.ingest_many(items)
    except TRANSPORT_ERRORS:
        raise
    except Exception as exc:  # noqa: BLE001 - find the item at fault: the others must still be read
        log.warning("batch failed unexpectedly; ingesting its items one by one", items=len(items),
                    error=f"{type(exc).__name__}: {str(exc)[:200]}")
        return [ingest_isolated(ingestor, raw, source) for raw, source in items]


@dataclass(frozen=True)
class Loop:
    """One adapter loop to supervise: ``run`` returns only once the shared stop event is set.

    ``records`` are the health records it keeps (heartbeat, crashes), e.g. ``imap:<account>/<folder>``.
    """

    name: str
    run: Callable[[], None]
    records: tuple[str, ...]


def supervise(loops: list[Loop], stop: threading.Event, health: AdapterHealth, *, restart: Backoff = Backoff(1.0, 300.0),
              heartbeat_seconds: float = 5.0, join_seconds: float = 30.0) -> None:
    """Run every loop on a thread of its own until ``stop``; restart one that dies; heartbeat for the living ones."""
    threads = [
        (loop, threading.Thread(target=_keep_running, args=(loop, stop, health, restart), name=loop.name, daemon=True))
        for loop in loops
    ]
    for _, thread in threads:
        thread.start()

    def beat() -> None:
        for loop, thread in threads:
            if thread.is_alive():
                for record in loop.records:
                    health.beat(record)

    beat()
    while not stop.wait(heartbeat_seconds):
        beat()
    for loop, thread in threads:
        thread.join(timeout=join_seconds)
        for record in loop.records:
            health.stopped(record)


def _keep_running(loop: Loop, stop: threading.Event, health: AdapterHealth, restart: Backoff) -> None:
    crashes = 0
    while not stop.is_set():
        started = time.monotonic()
        try:
            loop.run()
        except Exception as exc:  # noqa: BLE001 - a bug in a loop must not end intake: record it, restart
            detail = failure_detail(exc)
        else:
            if stop.is_set():
                return
            detail = "the loop returned before it was stopped"
        if time.monotonic() - started > restart.maximum:
            crashes = 0  # it ran well for a while: this is a new crash, not the same one again
        delay = restart.delay(crashes)
        crashes += 1
        for record in loop.records:
            health.crashed(record, detail)
        log.error("adapter loop crashed; restarting", loop=loop.name, error=detail.splitlines()[0], restart_in=round(delay, 1))
        stop.wait(delay)
