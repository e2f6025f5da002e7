"""The shape of the code, read from the source with ``ast`` (nothing is imported).

- No import cycle between the desk's modules, counting imports deferred into
  functions (a cycle hidden in a function is still two rooms that need each
  other); only ``if TYPE_CHECKING:`` blocks are left out.
- No worker module imports an intake adapter: the workers read the normalized
  message (``intake.message``), the queue layout and the shared parsing and
  state helpers, never the modules that talk to a mailbox, X, Slack or the web.
- Errors live in each package's ``errors`` module: no other module defines a
  public exception class (a private one, ``_Timeout``, may stay where it is used).
- Each assertion in the tests states one fact (no ``assert a and b``).
- ``workers/`` is in rooms by concern; no module is left loose beside them but
  the actors, their wiring (``services``) and the errors.
"""

from __future__ import annotations

import ast
import builtins
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("intake", "workers", "classifiers", "storage", "config", "ops", "web")
ADAPTERS = {"intake.imap", "intake.x", "intake.slack", "intake.files", "intake.web", "intake.email_intake", "intake.supervision"}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _imported(path: Path) -> set[str]:
    """The desk's modules that ``path`` imports anywhere, ``if TYPE_CHECKING:`` blocks aside."""
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                for alias in child.names:
                    submodule = f"{child.module}.{alias.name}"
                    names.add(submodule if submodule in MODULES else child.module)
            elif isinstance(child, ast.Import):
                names.update(alias.name for alias in child.names)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {name for name in names if name in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_given_a_cycle_then_the_checker_names_its_modules() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}

    assert cycles(graph) == [["a", "b", "c"]]


def test_given_a_chain_then_the_checker_finds_no_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": set()}

    assert cycles(graph) == []


def test_no_import_cycle_between_the_desks_modules() -> None:
    graph = {name: _imported(path) for name, path in MODULES.items()}

    assert cycles(graph) == []


def _worker_modules() -> Iterator[str]:
    return (name for name in MODULES if name.startswith("workers"))


@pytest.mark.parametrize("module", sorted(_worker_modules()))
def test_no_worker_module_imports_an_intake_adapter(module: str) -> None:
    assert sorted(_imported(MODULES[module]) & ADAPTERS) == []


BUILTIN_ERRORS = {name for name, value in vars(builtins).items() if isinstance(value, type) and issubclass(value, BaseException)}


@functools.cache
def _error_classes() -> frozenset[str]:
    """Names of the exception classes the errors modules define."""
    found: set[str] = set()
    for name, path in MODULES.items():
        if name.endswith(".errors"):
            found |= {node.name for node in ast.parse(path.read_text(encoding="utf-8")).body if isinstance(node, ast.ClassDef)}
    return frozenset(found)


def exception_classes(source: str, known: frozenset[str] | set[str]) -> list[str]:
    """The public top-level classes of ``source`` that derive from an exception (builtin or in ``known``)."""
    found = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            bases = {ast.unparse(base).rsplit(".", 1)[-1] for base in node.bases}
            if bases & (BUILTIN_ERRORS | known):
                found.append(node.name)
    return found


def test_given_an_exception_outside_errors_then_the_checker_names_it() -> None:
    source = "class Refused(ValueError):\n    pass\n\nclass _Private(Exception):\n    pass\n\nclass Plain:\n    pass\n"

    assert exception_classes(source, set()) == ["Refused"]


@pytest.mark.parametrize("module", sorted(name for name in MODULES if not name.endswith("errors")))
def test_exceptions_are_defined_in_their_packages_errors_module(module: str) -> None:
    assert exception_classes(MODULES[module].read_text(encoding="utf-8"), _error_classes()) == []


def test_workers_modules_live_in_rooms_by_concern() -> None:
    loose = sorted(path.name for path in (ROOT / "workers").glob("*.py"))

    assert loose == ["__init__.py", "actors.py", "errors.py", "services.py"]


def compound_assertions(source: str) -> list[int]:
    """Lines of ``assert a and b``: two facts in one assertion, so a failure does not say which one broke."""
    return [node.lineno for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Assert) and isinstance(node.test, ast.BoolOp) and isinstance(node.test.op, ast.And)]


def test_given_two_facts_in_one_assertion_then_the_checker_finds_it() -> None:
    source = "assert a == 1 and b == 2\nassert all(x and y for x, y in pairs)\nassert c\n"

    assert compound_assertions(source) == [1]


@pytest.mark.parametrize("path", sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py")))
def test_each_assertion_states_one_fact(path: str) -> None:
    assert compound_assertions((ROOT / path).read_text(encoding="utf-8")) == []
