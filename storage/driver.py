"""Hot statements on SQLite (the intake's, and the desk's on every ticket it assigns or changes), run on the driver's own cursor: compiled once by SQLAlchemy, values and results converted by its types.

SQLAlchemy's execution path costs several times SQLite's own work on a small statement (measured on the 2-core
machine: a keyed select 25 µs through ``Connection.execute``, 3 µs on the cursor; ``exec_driver_sql`` is no
cheaper than the cached compiled statement). On SQLite that cost is paid by the one writer, with every other
writer waiting for it. Here nothing of the statement's meaning is left to hand-written SQL:

- the statement is built with SQLAlchemy and compiled by the engine's own dialect, once for each set of keys
  it is given (an insert's columns are those of its row, as ``Connection.execute`` would have them);
- every value goes through its column type's own bind processor (JSON, UTC datetimes, booleans), and a column
  left out takes its scalar default, as SQLAlchemy would; every result value through its column type's result
  processor, so a row reads as SQLAlchemy's would (by attribute, by position, or as ``row._mapping``); a statement
  whose values need more (a Python callable default, an expanding ``IN``) is refused when it is compiled;
- a driver error is raised as SQLAlchemy's exception of the same kind (``IntegrityError``, ``OperationalError``…),
  so callers and the outage handling see what they would have seen.

It runs on the connection's current transaction (the driver connection under the ``Connection``). On any other
dialect the same calls are ``Connection.execute``: PostgreSQL's writers work in parallel, and SQLAlchemy's
handling of a lost connection (invalidating it in the pool) is kept there.
"""

from __future__ import annotations

import contextlib
import functools
from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Form:
    """The statement compiled for one set of keys (in their order): its SQL, how to build its parameters, and the shape of its rows."""

    sql: str
    values: tuple[tuple[str, Processor, Any], ...]  # (key, bind processor, default when the key is not given)
    row: Any  # a namedtuple class of the result's columns, or None
    results: tuple[Processor, ...]  # each result column's processor (None: the driver's value as it is)

    def parameters(self, given: Mapping[str, Any]) -> tuple[Any, ...]:
        out = []
        for key, process, default in self.values:
            value = given[key] if key in given else default
            out.append(process(value) if process is not None and value is not None else value)
        return tuple(out)

    def make(self, values: Sequence[Any]) -> Any:
        """A result row: each value converted by its column's type."""
        return self.row._make([value if process is None or value is None else process(value)
                               for process, value in zip(self.results, values)])


_HOT: dict[tuple[int, str], "Hot"] = {}


def hot(c: Connection, statement: ClauseElement) -> "Hot":
    """``statement`` as a ``Hot`` for ``c``'s dialect, made once per statement and dialect.

    For statements built once (module constants, ``storage.upsert``'s cached ones): the statement is kept alive by
    its ``Hot``, so its ``id`` names no other statement while the process runs."""
    key = (id(statement), c.dialect.name)
    found = _HOT.get(key)
    if found is None:
        found = _HOT.setdefault(key, Hot(statement, c.dialect))
    return found


class Hot:
    """A statement that runs many times a message: on SQLite on the driver's cursor, elsewhere through SQLAlchemy."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        self.statement = statement
        self.dialect = dialect
        self.on_driver = dialect.name == "sqlite"
        self._forms: dict[tuple[str, ...], _Form] = {}

    def first(self, c: Connection, params: Mapping[str, Any]) -> Any | None:
        """The first row (its columns as attributes), or None."""
        if not self.on_driver:
            return c.execute(self.statement, dict(params)).first()
        form = self._form(params)
        rows = self._run(c, form, params)
        return form.make(rows[0]) if rows else None

    def all(self, c: Connection, params: Mapping[str, Any]) -> list[Any]:
        """Every row (their columns as attributes)."""
        if not self.on_driver:
            return list(c.execute(self.statement, dict(params)).all())
        form = self._form(params)
        return [form.make(row) for row in self._run(c, form, params)]

    def scalar(self, c: Connection, params: Mapping[str, Any]) -> Any | None:
        """The first column of the first row, or None."""
        if not self.on_driver:
            return c.execute(self.statement, dict(params)).scalar()
        form = self._form(params)
        rows = self._run(c, form, params)
        if not rows:
            return None
        value, process = rows[0][0], form.results[0]
        return value if process is None or value is None else process(value)

    def run(self, c: Connection, params: Mapping[str, Any]) -> None:
        """The statement, for what it does (any result is read and dropped)."""
        if not self.on_driver:
            c.execute(self.statement, dict(params))
            return
        form = self._form(params)
        self._run(c, form, params)

    def execute_many(self, c: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """The statement once for each row (no result), in order; every row has the keys of the first, as SQLAlchemy requires."""
        if not rows:
            return
        if not self.on_driver:
            c.execute(self.statement, [dict(row) for row in rows])
            return
        keys = rows[0].keys()
        if any(row.keys() != keys for row in rows):
            raise ValueError("rows of one execute_many need the same keys")
        form = self._form(rows[0])
        parameters = [form.parameters(row) for row in rows]
        driver = _in_transaction(c)
        with self._as_sqlalchemy_error(form.sql, parameters, many=True):
            driver.executemany(form.sql, parameters)

    def _run(self, c: Connection, form: _Form, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        parameters = form.parameters(params)
        driver = _in_transaction(c)
        with self._as_sqlalchemy_error(form.sql, parameters):
            return driver.execute(form.sql, parameters).fetchall()  # to the end: a statement left open would hold back the commit

    @contextlib.contextmanager
    def _as_sqlalchemy_error(self, sql: str, parameters: Any, *, many: bool = False) -> Iterator[None]:
        """A driver error raised as SQLAlchemy's exception of the same kind, as ``Connection.execute`` raises it."""
        error = self.dialect.loaded_dbapi.Error
        try:
            yield
        except error as exc:
            raise DBAPIError.instance(sql, parameters, exc, error, dialect=self.dialect, ismulti=many) from exc

    def _form(self, params: Mapping[str, Any]) -> _Form:
        keys = tuple(params)
        form = self._forms.get(keys)
        if form is None:
            form = self._forms[keys] = self._compile(keys)
        return form

    def _compile(self, keys: tuple[str, ...]) -> _Form:
        dialect = self.dialect
        compiled = self.statement.compile(dialect=dialect, column_keys=list(keys))
        if not compiled.positional or compiled.positiontup is None:
            raise ValueError(f"{dialect.name}: expected a positional paramstyle")
        table = getattr(self.statement, "table", None)
        values = []
        for name in compiled.positiontup:
            bind = compiled.binds[name]
            if bind.expanding or bind.callable is not None:
                raise ValueError(f"parameter {name!r}: expanding or computed parameters are not supported here")
            default: Any = None  # used only for a key not given
            if bind.key not in keys:
                column = table.c.get(bind.key) if table is not None else None
                if column is not None and column.default is not None and column.default.is_scalar:
                    default = column.default.arg  # an inserted column left out: its default, as SQLAlchemy sets it
                elif column is None and not bind.required:
                    default = bind.effective_value  # a value written into the statement (a LIMIT, a literal)
                else:
                    raise ValueError(f"no value for {bind.key!r} and no scalar default")
            values.append((bind.key, bind.type.dialect_impl(dialect).bind_processor(dialect), default))
        columns = list(getattr(self.statement, "exported_columns", ()))
        results = tuple(column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns)
        return _Form(str(compiled), tuple(values), _row_class(tuple(column.key for column in columns)) if columns else None, results)


@functools.cache
def _row_class(names: tuple[str, ...]) -> type:
    """A namedtuple of the columns that also reads as a mapping (``row._mapping``), as SQLAlchemy's ``Row`` does."""
    base = namedtuple("Row", names, rename=True)  # noqa: PYI024
    return type("Row", (base,), {"__slots__": (), "_mapping": property(lambda self: dict(zip(names, self)))})


def _in_transaction(c: Connection) -> Any:
    """The driver's connection, in the ``Connection``'s transaction: begun first if there is none, as ``execute`` would (SQLAlchemy's autobegin)."""
    if not c.in_transaction():
        c.begin()
    return c.connection.driver_connection
