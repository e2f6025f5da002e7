"""``storage.driver.Hot``: on SQLite the driver's cursor, to the same rows and errors as SQLAlchemy's execute (PostgreSQL: its execute)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, bindparam, insert, select
from sqlalchemy.exc import IntegrityError, StatementError

from storage import schema
from storage.db import create_db_engine
from storage.driver import Hot
from storage.events import event_row
from storage.models import EVENT, MESSAGE, TICKET
from storage.upsert import on_conflict


def _message(external_id: str, at: datetime) -> dict:
    return {"channel": "email", "external_id": external_id, "content_hash": "c" * 64, "delivery_id": "d", "received_at": at,
            "stored_at": at, "sent_at": None, "refs": ["<a@x>", "<b@x>"], "recipients": [{"address": "help@desk.org", "name": "Désk"}],
            "signals": {"auto_submitted": None, "list": True}, "truncated": True, "subject": "Ünïcode ✓", "text": "body\nline 2"}


def test_rows_written_on_the_cursor_read_back_as_sqlalchemys_own(engine: Engine) -> None:
    # Given one message written through SQLAlchemy and one through Hot, with JSON, UTC datetimes, booleans and defaults
    claim = on_conflict(engine, MESSAGE, ["channel", "external_id"], returning=MESSAGE.c.id)
    at = datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    with engine.begin() as c:
        by_sqlalchemy = c.execute(claim, _message("sqla", at)).scalar()
        by_hot = Hot(claim, engine.dialect).scalar(c, _message("hot", at))
    # Then every column holds the same (but the keys): as the database has it, and read back in SQLAlchemy's types
    with engine.connect() as c:
        stored = {r.id: r._asdict() for r in c.exec_driver_sql("SELECT * FROM message")}
        rows = {r.id: r._asdict() for r in c.execute(select(MESSAGE))}
    for found in (stored, rows):
        first, second = ({k: v for k, v in found[pk].items() if k not in {"id", "external_id"}} for pk in (by_sqlalchemy, by_hot))
        assert first == second
    assert second["stored_at"] == at
    assert (second["refs"], second["truncated"], second["direction"]) == (["<a@x>", "<b@x>"], True, "in")  # "in": the column's default


def test_a_key_stored_before_returns_nothing_and_a_literal_limit_is_kept(engine: Engine) -> None:
    claim = Hot(on_conflict(engine, MESSAGE, ["channel", "external_id"], returning=MESSAGE.c.id), engine.dialect)
    latest = Hot(select(MESSAGE.c.id).where(MESSAGE.c.channel == "email").order_by(MESSAGE.c.id.desc()).limit(1), engine.dialect)
    at = datetime.now(timezone.utc)
    with engine.begin() as c:
        first = claim.scalar(c, _message("m1", at))
        assert claim.scalar(c, _message("m1", at)) is None
        second = claim.scalar(c, _message("m2", at))
        assert latest.first(c, {}).id == second != first


def test_outside_a_transaction_a_statement_begins_one_as_sqlalchemys_execute_does(engine: Engine) -> None:
    claim = Hot(on_conflict(engine, MESSAGE, ["channel", "external_id"], returning=MESSAGE.c.id), engine.dialect)
    with engine.connect() as c:
        claim.scalar(c, _message("m1", datetime.now(timezone.utc)))
        assert c.in_transaction()
        c.rollback()
        assert c.execute(select(MESSAGE.c.id)).all() == []


def test_rows_of_one_call_in_another_order_are_written_as_given_and_other_keys_are_refused(engine: Engine) -> None:
    events = Hot(on_conflict(engine, EVENT, ["key"]), engine.dialect)
    at = datetime.now(timezone.utc)
    first = event_row("e1", "routed", None, at, {"n": 1}, "email")
    reordered = dict(reversed(list(event_row("e2", "threaded", None, at, {"n": 2}, "slack").items())))
    with engine.begin() as c:
        events.execute_many(c, [first, reordered])
        with pytest.raises((ValueError, StatementError)):  # SQLAlchemy's own refusal on PostgreSQL
            events.execute_many(c, [event_row("e3", "routed", None, at, {}), {"key": "e4", "kind": "routed", "at": at}])
    with engine.connect() as c:
        assert c.execute(select(EVENT.c.key, EVENT.c.kind, EVENT.c.channel, EVENT.c.data).order_by(EVENT.c.key)).all() == [
            ("e1", "routed", "email", {"n": 1}), ("e2", "threaded", "slack", {"n": 2})]


def test_what_the_database_refuses_raises_sqlalchemys_exception(engine: Engine) -> None:
    events = Hot(on_conflict(engine, EVENT, ["key"]), engine.dialect)
    tickets = Hot(insert(TICKET).returning(TICKET.c.id), engine.dialect)
    at = datetime.now(timezone.utc)
    with pytest.raises(IntegrityError), engine.begin() as c:  # a ticket that does not exist
        events.execute_many(c, [event_row("ok", "routed", None, at, {}), event_row("bad", "routed", 10_000_000, at, {})])
    with pytest.raises(IntegrityError), engine.begin() as c:  # NOT NULL
        tickets.scalar(c, {"channel": None, "created_at": at, "updated_at": at})
    with engine.connect() as c:
        assert c.execute(select(EVENT.c.key)).all() == []


def test_rows_read_on_the_cursor_are_sqlalchemys_own(engine: Engine) -> None:
    # Given a message with JSON, UTC datetimes (one given with a +02:00 offset), booleans, NULLs and defaults
    claim = on_conflict(engine, MESSAGE, ["channel", "external_id"], returning=MESSAGE.c.id)
    at = datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    read = select(MESSAGE).where(MESSAGE.c.id == bindparam("pk"))
    with engine.begin() as c:
        pk = c.execute(claim, _message("read", at)).scalar()
        # When it is read through Hot (on SQLite the driver's cursor) and through SQLAlchemy's execute
        by_hot = Hot(read, engine.dialect).first(c, {"pk": pk})
        by_sqlalchemy = c.execute(read, {"pk": pk}).first()
        scalar = Hot(select(MESSAGE.c.received_at).where(MESSAGE.c.id == bindparam("pk")), engine.dialect).scalar(c, {"pk": pk})
    # Then every value is the same, of the same type, by name, by position and as a mapping
    assert by_hot._mapping == dict(by_sqlalchemy._mapping)
    assert tuple(by_hot) == tuple(by_sqlalchemy)
    assert {k: type(v) for k, v in by_hot._mapping.items()} == {k: type(v) for k, v in by_sqlalchemy._mapping.items()}
    assert (by_hot.received_at, by_hot.received_at.utcoffset(), by_hot.truncated) == (at, timedelta(0), True)
    assert (by_hot.signals, by_hot.sent_at) == ({"auto_submitted": None, "list": True}, None)
    assert (scalar, scalar.utcoffset()) == (at, timedelta(0))


def test_a_statement_whose_values_need_more_is_refused(tmp_path: Path) -> None:
    # SQLite only: on PostgreSQL the statement goes to SQLAlchemy's execute, which needs nothing of this
    engine = create_db_engine(f"sqlite:///{tmp_path / 'driver.db'}")
    schema.upgrade(engine)
    try:
        with engine.begin() as c:
            with pytest.raises(ValueError, match="expanding"):
                Hot(select(MESSAGE.c.id).where(MESSAGE.c.channel.in_(bindparam("channels", expanding=True))), engine.dialect).first(
                    c, {"channels": ["email"]})
            with pytest.raises(ValueError, match="no value for 'channel'"):
                Hot(select(MESSAGE.c.id).where(MESSAGE.c.channel == bindparam("channel")), engine.dialect).first(c, {})
    finally:
        engine.dispose()


def test_a_ticket_read_and_changed_by_the_desk_is_the_one_sqlalchemy_reads(engine: Engine) -> None:
    # Given a ticket with floats, booleans (one NULL), JSON objects and lists, and aware datetimes
    from storage import tickets  # noqa: PLC0415

    at = datetime(2026, 12, 7, 9, 15, 0, 250000, tzinfo=timezone.utc)
    with engine.begin() as c:
        pk = c.execute(insert(TICKET).returning(TICKET.c.id), {
            "channel": "email", "type": "data_review", "type_confidence": 0.75, "sector": "government", "language": "pt",
            "needs_triage": True, "classification": {"type": {"value": "data_review", "reasons": ["cue 'ocds'"]}}, "team": "lusophone",
            "tags": ["urgent", "outage"], "docs_gap": None, "first_response_met": False, "created_at": at, "updated_at": at}).scalar()
        # When the desk changes it (tickets.change: on SQLite the driver's cursor) and reads it back (tickets.get)
        tickets.change(c, pk, {"assignee": "ana", "assigned_at": at + timedelta(seconds=3), "assignment_count": 1,
                               "assignment": {"member": "ana", "at": at.isoformat()}, "resolution_due_at": at + timedelta(days=2)})
        read = tickets.get(c, pk, lock=True)
        expected = c.execute(select(TICKET).where(TICKET.c.id == pk)).one()
    # Then it holds every value SQLAlchemy reads, of the same types
    got = {column.key: getattr(read, column.key) for column in TICKET.columns}
    assert got == dict(expected._mapping)
    assert {k: type(v) for k, v in got.items()} == {k: type(v) for k, v in expected._mapping.items()}
    assert (read.assigned_at, read.tags, read.needs_triage) == (at + timedelta(seconds=3), ["urgent", "outage"], True)
    assert (read.docs_gap, read.first_response_met, read.type_confidence) == (None, False, 0.75)
