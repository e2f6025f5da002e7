"""The transactional outbox: side effects recorded with what causes them, carried out at most once each.

Lifecycle of a row: ``pending`` → (claimed) ``in_progress`` → ``done`` | ``failed``.
A claim is a lease: a row ``in_progress`` for longer than the lease (its
worker died) may be claimed again — handlers are idempotent, and the Slack
handler checks whether its message already went out before posting again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, or_, select, update

from storage.driver import hot
from storage.models import OUTBOX, utcnow
from storage.upsert import do_nothing

LEASE = timedelta(minutes=5)


@dataclass(frozen=True)
class OutboxItem:
    key: str
    kind: str
    ticket_id: int | None
    payload: dict[str, Any]
    attempts: int
    created_at: datetime
    result: dict[str, Any] | None


def new_row(key: str, kind: str, ticket_id: int | None, payload: dict[str, Any], at: datetime) -> dict[str, Any]:
    """The outbox row of a side effect not yet carried out."""
    return {"key": key[:255], "kind": kind, "ticket_id": ticket_id, "payload": payload, "status": "pending", "attempts": 0,
            "created_at": at, "updated_at": at}


def add(connection: Connection, key: str, kind: str, ticket_id: int | None, payload: dict[str, Any], at: datetime | None = None) -> bool:
    """Record a side effect in the caller's transaction; False if its key was recorded before."""
    row = new_row(key, kind, ticket_id, payload, at or utcnow())
    return hot(connection, do_nothing(connection.dialect.name, OUTBOX, ("key",), OUTBOX.c.id)).scalar(connection, row) is not None


def put(engine: Engine, key: str, kind: str, ticket_id: int | None, payload: dict[str, Any], at: datetime | None = None) -> bool:
    """Record a side effect in a transaction of its own; False if its key was recorded before."""
    with engine.begin() as c:
        return add(c, key, kind, ticket_id, payload, at)


# Every effect runs these: built once, values bound at execution (building a statement per call costs more
# than the database's own work).
_CLAIM = (
    update(OUTBOX)
    .where(OUTBOX.c.key == bindparam("claim_key"),
           or_(OUTBOX.c.status == "pending", (OUTBOX.c.status == "in_progress") & (OUTBOX.c.updated_at < bindparam("lease_expired"))))
    .values(status="in_progress", attempts=OUTBOX.c.attempts + 1, updated_at=bindparam("now"))
    .returning(OUTBOX.c.key, OUTBOX.c.kind, OUTBOX.c.ticket_id, OUTBOX.c.payload, OUTBOX.c.attempts, OUTBOX.c.created_at, OUTBOX.c.result)
)
_COMPLETE = (
    update(OUTBOX)
    .where(OUTBOX.c.key == bindparam("done_key"))
    .values(status="done", result=bindparam("result"), done_at=bindparam("now"), updated_at=bindparam("now"), last_error=None)
)


def claim(engine: Engine, key: str, now: datetime | None = None, lease: timedelta = LEASE) -> OutboxItem | None:
    """Take the row for carrying out; None if it is done, failed, unknown, or leased to a live worker."""
    with engine.begin() as c:
        return claim_in(c, key, now, lease)


def claim_in(c: Connection, key: str, now: datetime | None = None, lease: timedelta = LEASE) -> OutboxItem | None:
    """``claim`` in the caller's transaction: for an effect done in that same transaction, which then also completes it."""
    now = now or utcnow()
    row = hot(c, _CLAIM).first(c, {"claim_key": key, "lease_expired": now - lease, "now": now})
    if row is None:
        return None
    return OutboxItem(row.key, row.kind, row.ticket_id, row.payload or {}, row.attempts, row.created_at, row.result)


_KINDS = select(OUTBOX.c.key, OUTBOX.c.kind).where(OUTBOX.c.key.in_(bindparam("kind_keys", expanding=True)))


def kinds_in(c: Connection, keys: Sequence[str]) -> dict[str, str]:
    """The kind of each row among ``keys`` (a key without a row is left out)."""
    return dict(c.execute(_KINDS, {"kind_keys": list(keys)}).all())  # type: ignore[arg-type]


_FOLLOW_UPS = select(OUTBOX.c.result).where(OUTBOX.c.key == bindparam("done_key"), OUTBOX.c.status == "done")


def follow_ups_in(c: Connection, key: str) -> tuple[str, ...]:
    """The keys a done row created (its result's ``effects``); none for a row not done.

    A queue message delivered again after its worker died finds its row done: these let it go on with what that
    row started (each is idempotent by its own key), as the dead worker would have."""
    result = c.execute(_FOLLOW_UPS, {"done_key": key}).scalar()
    return tuple(result.get("effects") or ()) if isinstance(result, dict) else ()


def complete(engine: Engine, key: str, result: dict[str, Any] | None = None) -> None:
    with engine.begin() as c:
        complete_in(c, key, result)


def complete_in(c: Connection, key: str, result: dict[str, Any] | None = None) -> None:
    hot(c, _COMPLETE).run(c, {"done_key": key, "result": result, "now": utcnow()})


def release(engine: Engine, key: str, error: str, *, final: bool = False, result: dict[str, Any] | None = None) -> None:
    """Give the row back (to be retried) or, when ``final``, mark it failed with the error visible to staff."""
    values: dict[str, Any] = {"status": "failed" if final else "pending", "last_error": error[:4000], "updated_at": utcnow()}
    if result is not None:
        values["result"] = result
    with engine.begin() as c:
        c.execute(update(OUTBOX).where(OUTBOX.c.key == key).values(**values))


def stale_keys(engine: Engine, now: datetime | None = None, pending_after: timedelta = timedelta(seconds=30), limit: int = 500,
               lease: timedelta = LEASE) -> list[str]:
    """Rows the queue may have lost: pending for a while, or leased to a worker that stopped answering."""
    now = now or utcnow()
    with engine.connect() as c:
        rows = c.execute(
            select(OUTBOX.c.key)
            .where(
                or_(
                    (OUTBOX.c.status == "pending") & (OUTBOX.c.updated_at < now - pending_after),
                    (OUTBOX.c.status == "in_progress") & (OUTBOX.c.updated_at < now - lease),
                )
            )
            .order_by(OUTBOX.c.id)
            .limit(limit)
        )
        return [r.key for r in rows]


def get(engine: Engine, key: str) -> dict[str, Any] | None:
    with engine.connect() as c:
        row = c.execute(select(OUTBOX).where(OUTBOX.c.key == key)).first()
    return dict(row._mapping) if row is not None else None


def make_pending(connection: Connection, key: str, at: datetime, *, only_finished: bool = False) -> None:
    """In the caller's transaction: the row ``key`` to be carried out again (with ``only_finished``, only if it was done or failed)."""
    stmt = update(OUTBOX).where(OUTBOX.c.key == key)
    if only_finished:
        stmt = stmt.where(OUTBOX.c.status.in_(("done", "failed")))
    connection.execute(stmt.values(status="pending", updated_at=at))
