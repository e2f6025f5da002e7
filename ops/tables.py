"""Tables that stay readable at any terminal width.

Every column has a priority: 0 for the key columns (a ticket's number, its status, dates),
which are always shown whole; higher numbers are dropped first when the table does not fit
— a dropped column is named under the table, and ``--wide`` (everything, as wide as it
takes) or ``--columns a,b`` (exactly those) bring it back. Nothing is squeezed: the one
``flexible`` column (a subject) takes the room that is left, cut to one line with an
ellipsis, never narrower than its ``min_width``. Titles never wrap: a table is at least as
wide as its title.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

Cell = str | Text
BORDERS = 3  # per column: a padding space each side and a rule; plus one rule for the table's right edge


@dataclass(frozen=True)
class Column:
    key: str  # the name ``--columns`` takes
    header: str = ""
    priority: int = 0  # 0: always shown, whole; larger numbers are dropped first
    flexible: bool = False  # cut to one line with an ellipsis when room is short
    min_width: int = 12
    justify: str = "left"
    style: str | None = None

    @property
    def title(self) -> str:
        return self.header or self.key


@dataclass(frozen=True)
class Layout:
    columns: tuple[Column, ...]
    widths: tuple[int, ...]
    dropped: tuple[str, ...] = ()
    width: int = 0  # the table's whole width


@dataclass(frozen=True)
class Shape:
    """How a command wants its tables: everything (``wide``), exactly ``only`` (and the key columns), or fitted."""

    wide: bool = False
    only: tuple[str, ...] = ()

    @classmethod
    def parse(cls, wide: bool, columns: str | None) -> "Shape":
        return cls(wide=wide, only=tuple(c.strip() for c in (columns or "").split(",") if c.strip()))


def natural_widths(columns: Sequence[Column], rows: Sequence[Sequence[Cell]]) -> list[int]:
    widths = [cell_len(c.title) for c in columns]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], cell.cell_len if isinstance(cell, Text) else cell_len(cell))
    return widths


def layout(columns: Sequence[Column], rows: Sequence[Sequence[Cell]], width: int, shape: Shape | None = None) -> Layout:
    """Which columns to show and how wide, for a terminal ``width`` columns wide."""
    shape = shape or Shape()
    natural = natural_widths(columns, rows)
    keep = list(range(len(columns)))
    if shape.only:
        keep = [i for i in keep if columns[i].key in shape.only or columns[i].priority == 0]
    if shape.wide or shape.only:
        widths = [natural[i] for i in keep]
        return Layout(tuple(columns[i] for i in keep), tuple(widths), (), sum(widths) + BORDERS * len(keep) + 1)

    def needed(indices: list[int], flexible_whole: bool = False) -> int:
        return sum(natural[i] if flexible_whole or not columns[i].flexible else min(natural[i], columns[i].min_width)
                   for i in indices) + BORDERS * len(indices) + 1

    dropped: list[str] = []

    def drop_while(too_wide: Callable[[], bool], allowed: Callable[[Column], bool]) -> None:
        while too_wide():
            candidates = [i for i in keep if columns[i].priority > 0 and allowed(columns[i])]
            if not candidates:
                return
            worst = max(candidates, key=lambda i: (columns[i].priority, i))
            keep.remove(worst)
            dropped.append(columns[worst].key)

    # The columns less important than the flexible one (a subject) give way to it whole; if even its minimum
    # does not fit, the more important ones go too — the flexible column last of all.
    flexible = min((c.priority for c in columns if c.flexible), default=None)
    if flexible is not None:
        drop_while(lambda: needed(keep, flexible_whole=True) > width, lambda c: c.priority > flexible)
    drop_while(lambda: needed(keep) > width, lambda c: not c.flexible)
    drop_while(lambda: needed(keep) > width, lambda c: True)
    widths = _share(columns, natural, keep, width - needed(keep))
    return Layout(tuple(columns[i] for i in keep), tuple(widths), tuple(dropped), sum(widths) + BORDERS * len(keep) + 1)


def _share(columns: Sequence[Column], natural: list[int], keep: list[int], spare: int) -> list[int]:
    """Widths of the kept columns: each whole, but flexible ones at their minimum plus what ``spare`` room allows."""
    widths = []
    for i in keep:
        if columns[i].flexible:
            least = min(natural[i], columns[i].min_width)
            grow = min(natural[i] - least, max(spare, 0))
            spare -= grow
            widths.append(least + grow)
        else:
            widths.append(natural[i])
    return widths


def build(title: str, columns: Sequence[Column], rows: Sequence[Sequence[Cell]], width: int, shape: Shape | None = None,
          *, footer: Sequence[Cell] | None = None) -> tuple[Table, Layout]:
    """A rich Table laid out for ``width``; ``footer`` is a last row in bold (totals)."""
    shape = shape or Shape()
    every = [*rows, footer] if footer is not None else list(rows)
    plan = layout(columns, every, width, shape)
    index = [list(columns).index(c) for c in plan.columns]
    table = Table(title=title or None, title_justify="left", title_style="bold", min_width=min(cell_len(title), max(width, plan.width)))
    for column, column_width in zip(plan.columns, plan.widths):
        table.add_column(column.title, justify=column.justify, no_wrap=True, overflow="ellipsis", width=column_width,
                         style=column.style)  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*(row[i] for i in index))
    if footer is not None:
        table.add_row(*(footer[i] for i in index), style="bold")
    return table, plan


def show(console: Console, title: str, columns: Sequence[Column], rows: Sequence[Sequence[Cell]], shape: Shape | None = None,
         *, footer: Sequence[Cell] | None = None) -> Layout:
    """Print a fitted table; with ``--wide`` or ``--columns`` as wide as it takes, whatever the terminal."""
    table, plan = build(title, columns, rows, console.width, shape, footer=footer)
    print_wide(console, table, plan.width)
    if plan.dropped:
        console.print(Text(f"hidden at {console.width} columns: {', '.join(plan.dropped)} (--wide or --columns)", style="dim"))
    return plan


def print_wide(console: Console, renderable: RenderableType, width: int) -> None:
    """Print at ``width`` columns when that is wider than the terminal (lines run past its edge rather than wrap)."""
    if width <= console.width:
        console.print(renderable)
        return
    saved = console.width
    console.width = width
    try:
        console.print(renderable, crop=False)
    finally:
        console.width = saved
