"""Only ``storage/`` speaks SQL: every other module of the desk calls its repository functions.

The source tree is read with ``ast`` (nothing is imported but ``storage``'s own
modules, to tell its tables from its other names). Outside ``storage/`` (and the
tests and benchmarks) a module may name the types ``Engine`` and ``Connection``
and catch ``sqlalchemy.exc`` errors, and nothing more of SQLAlchemy or SQLModel:
no statement built (``select``, ``insert``, ``text``, ``.where``, a table's
``.c`` columns), none executed (``.execute(stmt)``, ``.exec``, ``.scalar``).
A Redis pipeline's ``execute()`` takes no statement and is not flagged.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Table

ROOT = Path(__file__).resolve().parents[2]
EXEMPT = {"storage", "tests", "bench", "docs", "scripts", "helpdesk-data"}
SQL_PACKAGES = ("sqlalchemy", "sqlmodel")
ALLOWED_IMPORTS = {"sqlalchemy": {"Engine", "Connection"}}  # type hints of what storage's functions take
ALLOWED_MODULES = {"sqlalchemy.exc"}  # errors are caught where an outage is told from a failure
EXECUTING = {"exec", "exec_driver_sql", "scalar", "scalars", "scalar_one", "scalar_one_or_none"}
BUILDING = {"with_for_update", "on_conflict_do_nothing", "on_conflict_do_update", "returning"}
CHAINED = {"where", "select_from", "group_by", "order_by", "join", "outerjoin", "limit"}  # on a statement just built: select(…).where(…)


def _sources() -> Iterator[Path]:
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if parts[0] in EXEMPT or parts[0].startswith(".") or parts[0].endswith(".egg-info"):
            continue
        yield path


def _is_table(module: str, name: str) -> bool:
    try:
        return isinstance(getattr(importlib.import_module(module), name, None), Table)
    except ImportError:
        return False


def _capitalised(node: ast.expr) -> bool:
    """``TICKET`` or ``outbox.OUTBOX``: how a table handle is spelt."""
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return name.isupper()


def violations(source: str) -> list[tuple[int, str]]:
    """(line, what) for each use of SQL in ``source``, a module outside ``storage/``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, f"import {a.name}") for a in node.names
                      if a.name.split(".")[0] in SQL_PACKAGES and a.name not in ALLOWED_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module:
            root = node.module.split(".")[0]
            if root in SQL_PACKAGES and node.module not in ALLOWED_MODULES:
                allowed = ALLOWED_IMPORTS.get(node.module, set())
                found += [(node.lineno, f"from {node.module} import {a.name}") for a in node.names if a.name not in allowed]
            elif root == "storage":
                found += [(node.lineno, f"table {a.name} imported from {node.module}") for a in node.names
                          if a.name.isupper() and _is_table(node.module, a.name)]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            method = node.func.attr
            if method == "execute" and node.args:  # SQL executes a statement; a Redis pipeline's execute() takes none
                found.append((node.lineno, ".execute(statement)"))
            elif method in EXECUTING or method in BUILDING:
                found.append((node.lineno, f".{method}()"))
            elif method in CHAINED and isinstance(node.func.value, ast.Call):  # not numpy's np.where(…)
                found.append((node.lineno, f".{method}()"))
        elif isinstance(node, ast.Attribute):
            if node.attr == "__table__":
                found.append((node.lineno, ".__table__"))
            elif node.attr == "c" and _capitalised(node.value):
                found.append((node.lineno, "a table's columns (.c)"))
    return found


def test_the_checker_flags_sql_and_leaves_redis_alone() -> None:
    redis = "pipe = client.pipeline()\npipe.llen('q')\nready, = pipe.execute()\nclient.delete('k')\nvalues.update(a=1)\nnp.where(a, b, c)\n"
    assert violations(redis) == []
    assert violations("from sqlalchemy import Engine\nfrom sqlalchemy.exc import SQLAlchemyError\n") == []
    sql = (
        "from sqlalchemy import Engine, select\n"
        "with engine.begin() as c:\n"
        "    c.execute(select(TICKET).where(TICKET.c.id == 1)).scalar()\n"
        "from storage.models import TICKET\n"
        "x = Ticket.__table__\n"
        "session.exec(stmt)\n"
    )
    assert {what for _, what in violations(sql)} == {
        "from sqlalchemy import select", ".execute(statement)", ".scalar()", ".where()", "a table's columns (.c)",
        "table TICKET imported from storage.models", ".__table__", ".exec()",
    }


@pytest.mark.parametrize("path", list(_sources()), ids=lambda p: str(p.relative_to(ROOT)))
def test_only_storage_speaks_sql(path: Path) -> None:
    found = violations(path.read_text(encoding="utf-8"))
    assert not found, f"{path.relative_to(ROOT)} uses SQL outside storage/ (add a repository function there):\n" + "\n".join(
        f"  line {line}: {what}" for line, what in found
    )
