"""The tables: what the migrations build is what ``storage.models`` declares, on SQLite and PostgreSQL alike; each
model class is mapped onto its own table; and the tables alone need neither SQLModel nor the other database's dialect."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, select

from storage import models, tickets
from storage.models import MODEL_TABLES, TICKET, metadata, utcnow

ROOT = Path(__file__).resolve().parents[2]


def _condition(clause: object) -> str:
    """A partial index's condition as text, without the parentheses and spacing a database adds."""
    text = re.sub(r"\s+", " ", str(clause)).strip()
    while text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    return text


def test_the_migrations_build_exactly_the_declared_tables(engine: Engine) -> None:
    # Given a database brought to the newest migration (the fixture)
    # When Alembic compares it with the tables — columns, types, keys, indexes, constraints
    with engine.connect() as c:
        differences = compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}), metadata)
    # Then there is nothing to change
    assert differences == []


def test_the_partial_indexes_cover_the_rows_the_migrations_made_them_cover(engine: Engine) -> None:
    # Given a migrated database, and its engine's dialect (for which the engine declared the indexes' conditions)
    dialect = engine.dialect.name
    found = {index["name"]: _condition(index["dialect_options"][f"{dialect}_where"])
             for table in metadata.tables for index in inspect(engine).get_indexes(table)
             if index.get("dialect_options", {}).get(f"{dialect}_where") is not None}
    # When the tables' own conditions are read for that dialect
    declared = {index.name: _condition(index.dialect_options[dialect]["where"])
                for table in metadata.tables.values() for index in table.indexes
                if index.dialect_options[dialect]["where"] is not None}
    # Then they are the database's (Alembic's comparison above does not look at conditions)
    assert declared == found
    assert found == {"ix_ticket_unresolved": "resolved_at IS NULL"}


@pytest.mark.parametrize("name", list(MODEL_TABLES))
def test_each_model_class_is_mapped_onto_its_own_table(name: str) -> None:
    # When the class is first named
    model = getattr(models, name)
    # Then it is the table's, with one field per column in the table's order
    assert model.__table__ is MODEL_TABLES[name]
    assert list(model.model_fields) == [column.key for column in MODEL_TABLES[name].columns]
    assert getattr(models, name) is model


def test_a_stored_ticket_comes_back_as_its_model(engine: Engine) -> None:
    # Given a ticket written through the table
    now = utcnow()
    with engine.begin() as c:
        ticket_id = c.execute(TICKET.insert().values(channel="email", type="question", sector="unknown", language="en",
                                                     team="data", classification={"type": {"confidence": 0.5}},
                                                     created_at=now, updated_at=now).returning(TICKET.c.id)).scalar_one()
    # When it is read
    with engine.connect() as c:
        ticket = tickets.get(c, ticket_id)
        row = c.execute(select(TICKET).where(TICKET.c.id == ticket_id)).one()
    # Then the model holds the row's values, the columns' defaults included
    assert isinstance(ticket, models.Ticket)
    assert {key: getattr(ticket, key) for key in row._mapping} == dict(row._mapping)
    assert (ticket.status, ticket.priority, ticket.needs_triage, ticket.created_at) == ("new", "normal", False, now)


def test_open_loads_count_each_members_open_tickets_from_the_index_alone(engine: Engine) -> None:
    # Given open, pending and resolved tickets of two members and of someone else
    now = utcnow()
    rows = [("ana", "new"), ("ana", "open"), ("ana", "pending"), ("ana", "resolved"), ("ben", "open"), ("cy", "open"), (None, "new")]
    with engine.begin() as c:
        c.execute(TICKET.insert(), [{"channel": "email", "type": "question", "sector": "unknown", "language": "en", "team": "data",
                                     "assignee": who, "status": status, "created_at": now, "updated_at": now} for who, status in rows])
    # When the members' loads are counted, as every assignment does
    with engine.connect() as c:
        loads = tickets.open_loads(c, ["ana", "ben", "dee"])
    # Then each counts their open tickets only
    assert loads == {"ana": 3, "ben": 1}
    # And (SQLite, whose plans name their indexes) from an index, without reading a ticket's row
    if engine.dialect.name == "sqlite":
        statement = tickets._loads(("ana", "ben", "dee")).compile(engine, compile_kwargs={"literal_binds": True})
        with engine.connect() as c:
            plan = " ".join(str(row[-1]) for row in c.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}"))
        assert "COVERING INDEX ix_ticket_assignee_status" in plan, plan


def test_the_tables_need_neither_sqlmodel_nor_the_orm_nor_postgresql(tmp_path: Path) -> None:
    # Given a fresh process
    probe = ("import sys; from storage import queries, tickets, contacts; from storage.db import create_db_engine; "
             f"create_db_engine('sqlite:///{tmp_path / 'x.db'}'); "
             "print(sorted(m for m in ('sqlmodel', 'sqlalchemy.orm', 'sqlalchemy.dialects.postgresql') if m in sys.modules))")
    # When it imports the repository modules a reading command uses and makes a SQLite engine
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    # Then none of them was imported
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
