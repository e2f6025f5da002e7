"""The one dialect-aware ``INSERT … ON CONFLICT``: how every keyed write of ``storage`` becomes idempotent.

SQLite and PostgreSQL both have ``ON CONFLICT (…) DO NOTHING | DO UPDATE``, but
SQLAlchemy builds it from each dialect's own ``insert``. This module picks the
dialect once per statement, so no repository function chooses it itself.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Column, Connection, Engine, Table
from sqlalchemy.sql.dml import Insert

Bind = Connection | Engine | str  # what tells the dialect: a connection, an engine, or the dialect's name


def _dialect(bind: Bind) -> str:
    name = bind if isinstance(bind, str) else bind.dialect.name
    if name not in {"sqlite", "postgresql"}:
        raise ValueError(f"unsupported database dialect {name!r}")
    return name


def on_conflict(bind: Bind, table: Table, keys: Sequence[str], *, update: Mapping[str, Any] | None = None,
                returning: Column[Any] | None = None) -> Insert:
    """``INSERT INTO table`` that does nothing — or sets ``update`` — when a row with the same unique ``keys`` exists.

    Values are given with ``.values(...)`` or bound at execution (one statement built once for many rows).
    With ``returning``, the new row's column comes back; a conflict that did nothing returns no row.
    """
    # The dialect's own module, imported here: importing PostgreSQL's costs a command on SQLite 0.02 s (and SQLite's
    # is loaded anyway by a SQLite engine).
    if _dialect(bind) == "sqlite":
        from sqlalchemy.dialects.sqlite import insert  # noqa: PLC0415
    else:
        from sqlalchemy.dialects.postgresql import insert  # noqa: PLC0415
    stmt = insert(table)
    if update:
        stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_=dict(update))
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
    return stmt.returning(returning) if returning is not None else stmt


@functools.cache
def do_nothing(dialect: str, table: Table, keys: tuple[str, ...], returning: Column[Any] | None = None) -> Insert:
    """``on_conflict`` without an update, built once per table and dialect: values bound at execution.

    Building a statement costs more than SQLite's own work on it, and keyed writes run several times per message.
    """
    return on_conflict(dialect, table, keys, returning=returning)


def insert_once(c: Connection, table: Table, values: Mapping[str, Any], keys: Sequence[str], returning: Column[Any]) -> Any | None:
    """Insert ``values`` unless their ``keys`` were stored before: the new row's ``returning`` column, or None (nothing written)."""
    return c.execute(do_nothing(c.dialect.name, table, tuple(keys), returning), dict(values)).scalar()
