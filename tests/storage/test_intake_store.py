from __future__ import annotations

import threading

import pytest

from sqlalchemy import Engine, func, select

from storage.intake_store import CONTACT, IDENTITY, MESSAGE, IntakeStore

from storage.errors import LostRace
from storage.models import utcnow
from storage import schema


def _row(external_id: str = "m1", content_hash: str = "a" * 64, delivery: str = "d1") -> dict:
    now = utcnow()
    return {
        "channel": "email", "external_id": external_id, "content_hash": content_hash, "delivery_id": delivery,
        "received_at": now, "stored_at": now,
    }


def test_migrations_are_current(engine: Engine) -> None:
    assert schema.is_current(engine)
    schema.upgrade(engine)  # a second run is a no-op


def test_the_unique_key_refuses_a_second_insert(engine: Engine) -> None:
    store = IntakeStore(engine)
    with store.transaction() as tx:
        assert tx.find_message("email", "m1") is None
        first = tx.insert_message(_row())
    with pytest.raises(LostRace):
        with store.transaction() as tx:
            tx.insert_message(_row(delivery="d2"))
    with store.transaction() as tx:
        found = tx.find_message("email", "m1")
    assert found is not None
    assert found.message_pk == first
    assert found.delivery_id == "d1"


def test_concurrent_inserts_have_exactly_one_winner(engine: Engine) -> None:
    # Given eight threads inserting the same key at once
    store = IntakeStore(engine)
    results: list[object] = []
    barrier = threading.Barrier(8)

    def claim(i: int) -> None:
        barrier.wait()
        try:
            with store.transaction() as tx:
                results.append(tx.insert_message(_row(delivery=f"d{i}")))
        except LostRace as exc:
            results.append(exc)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then one claimed it and seven found it taken; one row exists
    assert sum(isinstance(r, int) for r in results) == 1
    assert sum(isinstance(r, LostRace) for r in results) == 7
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(MESSAGE)).scalar_one() == 1


def test_concurrent_contact_upserts_make_one_contact(engine: Engine) -> None:
    store = IntakeStore(engine)
    ids: list[int] = []
    barrier = threading.Barrier(6)

    def upsert() -> None:
        barrier.wait()
        with store.transaction() as tx:
            ids.append(tx.upsert_contact("email", "ana@x.org", "Ana", None, utcnow()))

    threads = [threading.Thread(target=upsert) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 1
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(CONTACT)).scalar_one() == 1
        assert c.execute(select(func.count()).select_from(IDENTITY)).scalar_one() == 1


def test_events_and_quarantine_are_keyed(engine: Engine) -> None:
    store = IntakeStore(engine)
    event = {"key": "k1", "kind": "duplicate", "ticket_id": None, "channel": "email", "at": utcnow(), "data": {"a": 1}}
    row = {"key": "q1", "kind": "rejected", "channel": "email", "reason": "empty", "detail": "", "source": "", "raw_ref": None,
           "payload": None, "received_at": utcnow(), "created_at": utcnow()}
    with store.transaction() as tx:
        tx.add_events([event])
        assert tx.quarantine(row) is True
    with store.transaction() as tx:
        tx.add_events([event])
        assert tx.quarantine(row) is False
    with engine.connect() as c:
        from storage.intake_store import EVENT, QUARANTINE

        assert c.execute(select(func.count()).select_from(EVENT)).scalar_one() == 1
        assert c.execute(select(func.count()).select_from(QUARANTINE)).scalar_one() == 1


def test_timestamps_come_back_aware_utc(engine: Engine) -> None:
    store = IntakeStore(engine)
    with store.transaction() as tx:
        tx.insert_message(_row())
    with engine.connect() as c:
        value = c.execute(select(MESSAGE.c.received_at)).scalar_one()
    assert value.tzinfo is not None
    assert value.utcoffset().total_seconds() == 0
