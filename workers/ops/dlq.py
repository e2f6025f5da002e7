"""Dead letters: list, show, replay, purge — Redis's dead-letter queues mirrored in the database.

dramatiq keeps a dead letter in ``<ns>:<queue>.XQ`` for seven days; the
``quarantine`` table keeps it (payload, reason, traceback) for good. ``sync``
copies any letter the worker could not mirror. Replaying enqueues the message
again — from Redis while it is there, else from the database copy — and the
pipeline's keys make a replay of something already stored harmless. Rejected
input (mail that could not be parsed) is replayed by parsing its archived raw
bytes again, for after a parser fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

import dramatiq
import redis
from sqlalchemy import Engine

from storage import quarantine
from storage.models import utcnow
from storage.queries import open_quarantine

class Reparser(Protocol):
    """What parses archived raw mail again and queues it (the e-mail intake's ingestor): True when queued."""

    def ingest(self, raw: bytes, source: str) -> bool: ...


RESET_OPTIONS = ("retries", "traceback", "redis_message_id", "eta", "requeue_timestamp")


@dataclass(frozen=True)
class ReplayResult:
    id: int
    outcome: str  # replayed | reparsed | rejected_again | gone | not_open


def _xq(namespace: str, queue: str) -> tuple[str, str]:
    return f"{namespace}:{queue}.XQ", f"{namespace}:{queue}.XQ.msgs"


def sync(client: redis.Redis, namespace: str, engine: Engine, queues: tuple[str, ...]) -> int:
    """Mirror every dead letter still in Redis that the database does not know yet; returns how many were added."""
    added = 0
    for queue in queues:
        _, messages = _xq(namespace, queue)
        for redis_id, raw in client.hgetall(messages).items():
            try:
                message = dramatiq.Message.decode(raw)
            except Exception:  # noqa: BLE001 - an undecodable letter is still mirrored, with its raw bytes
                message = None
            message_id = message.message_id if message else redis_id.decode()
            payload = message.asdict() if message else {"raw": raw.decode("utf-8", "replace")}
            payload.setdefault("options", {})["redis_message_id"] = redis_id.decode()
            added += quarantine.mirror_dead_letter(
                engine, message_id=message_id, queue=queue,
                reason=(message.options.get("traceback", "").strip().splitlines() or ["unknown"])[-1][:100] if message else "undecodable",
                detail=message.options.get("traceback", "") if message else "", payload=payload,
                received_at=datetime.fromtimestamp(message.message_timestamp / 1000, timezone.utc) if message else utcnow(), at=utcnow(),
            )
    return added


def open_letters(engine: Engine, kind: str | None = None) -> list[Any]:
    """Open dead letters and rejected input (``kind``: only those); their number is ``helpdesk status``'s ``quarantined``."""
    with engine.connect() as c:
        rows = open_quarantine(c)
    return [row for row in rows if kind is None or row.kind == kind]


def find(engine: Engine, ident: str) -> Any | None:
    """By database id or dramatiq message id."""
    return quarantine.find(engine, ident)


def replay(client: redis.Redis, namespace: str, broker: dramatiq.Broker, engine: Engine, row: Any,
           ingestor: Reparser | None = None, archive: Any = None) -> ReplayResult:
    if row.status != "open":
        return ReplayResult(row.id, "not_open")
    if row.kind == "rejected":
        return _reparse(engine, row, ingestor, archive)
    payload = dict(row.payload or {})
    redis_id = (payload.get("options") or {}).get("redis_message_id")
    if redis_id and row.queue:
        raw = client.hget(_xq(namespace, row.queue)[1], redis_id)
        if raw is not None:
            payload = dramatiq.Message.decode(raw).asdict()
    if "actor_name" not in payload:
        return ReplayResult(row.id, "gone")
    options = {k: v for k, v in (payload.get("options") or {}).items() if k not in RESET_OPTIONS}
    message = dramatiq.Message(queue_name=payload["queue_name"], actor_name=payload["actor_name"], args=tuple(payload.get("args", ())),
                               kwargs=payload.get("kwargs", {}), options=options, message_id=payload["message_id"],
                               message_timestamp=payload["message_timestamp"])
    broker.enqueue(message)
    if redis_id and row.queue:
        xq, messages = _xq(namespace, row.queue)
        pipe = client.pipeline(transaction=True)
        pipe.zrem(xq, redis_id)
        pipe.hdel(messages, redis_id)
        pipe.execute()
    _mark(engine, row.id, "replayed")
    return ReplayResult(row.id, "replayed")


def _reparse(engine: Engine, row: Any, ingestor: Reparser | None, archive: Any) -> ReplayResult:
    if ingestor is None or archive is None or not row.raw_ref or row.raw_ref not in archive:
        return ReplayResult(row.id, "gone")
    queued = ingestor.ingest(archive.get(row.raw_ref), row.source)
    if queued:
        _mark(engine, row.id, "replayed")
        return ReplayResult(row.id, "reparsed")
    return ReplayResult(row.id, "rejected_again")


def purge(client: redis.Redis, namespace: str, engine: Engine, queues: tuple[str, ...]) -> int:
    """Drop every dead letter from Redis; the database rows stay, marked purged, for the record — without their
    payloads (the messages people sent, which purging means no longer keeping)."""
    for queue in queues:
        client.delete(*_xq(namespace, queue))
    return quarantine.purge_dead_letters(engine)


def _mark(engine: Engine, row_id: int, status: str) -> None:
    quarantine.mark(engine, row_id, status, utcnow())
