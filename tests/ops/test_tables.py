"""Every table of `tickets` and `report` at 80, 100 and 160 columns: no line wider than the terminal, key columns whole."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from rich.cells import cell_len
from rich.console import Console
from sqlalchemy import Engine

from config.desk import load_desk
from config.settings import load_settings
from ops import tables
from ops.report_cli import render_grouped, render_report
from ops.views import render_tickets, ticket_row, when
from storage import queries
from storage.report import full_report, grouped
from tests.ops.test_cli_desk import NOW, seed_ticket
from workers.desk.operations import Desk

WIDTHS = [80, 100, 160]
LONG_SUBJECT = "Validation errors in our tender data when publishing the awards of the national treasury framework agreements"


def _render(width: int, draw: Callable[[Console], None]) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None, legacy_windows=False)
    draw(console)
    return console.file.getvalue()  # type: ignore[attr-defined]


def _lines_fit(out: str, width: int) -> bool:
    return all(cell_len(line) <= width for line in out.splitlines())


@pytest.fixture
def ticket_rows(engine: Engine) -> list[dict[str, Any]]:
    seed_ticket(engine, subject=LONG_SUBJECT, first_due=NOW - timedelta(hours=1))
    seed_ticket(engine, subject="Short", status="pending", type_="standard_change", needs_triage=True)
    seed_ticket(engine, subject=LONG_SUBJECT, status="resolved", opened=NOW - timedelta(days=40))
    desk = Desk(load_desk(load_settings(environ={})))
    with engine.connect() as c:
        return [ticket_row(row, desk, NOW) for row in queries.list_tickets(c, now=NOW)]


@pytest.mark.parametrize("width", WIDTHS)
def test_given_tickets_when_listed_at_a_width_then_no_line_is_wider(ticket_rows: list[dict[str, Any]], width: int) -> None:
    out = _render(width, lambda console: render_tickets(console, ticket_rows))
    assert _lines_fit(out, width), out


@pytest.mark.parametrize("width", WIDTHS)
def test_given_tickets_when_listed_at_a_width_then_number_status_and_due_time_are_whole_on_one_line(
        ticket_rows: list[dict[str, Any]], width: int) -> None:
    out = _render(width, lambda console: render_tickets(console, ticket_rows))
    for row in ticket_rows:
        line = next(line for line in out.splitlines() if f" {row['number']} " in line)
        assert f" {row['status']} " in line
        assert row["next_due_at"] is None or when(row["next_due_at"], year=False) in line


@pytest.mark.parametrize("width", WIDTHS)
def test_given_a_long_subject_when_listed_then_it_is_cut_to_one_line_with_an_ellipsis(ticket_rows: list[dict[str, Any]], width: int) -> None:
    out = _render(width, lambda console: render_tickets(console, ticket_rows))
    first = next(line for line in out.splitlines() if f" {ticket_rows[-1]['number']} " in line)
    assert "Validation errors" in first
    assert "…" in first


def test_given_a_narrow_terminal_when_columns_do_not_fit_then_the_least_important_are_dropped_and_named(
        ticket_rows: list[dict[str, Any]]) -> None:
    out = _render(80, lambda console: render_tickets(console, ticket_rows))
    assert "hidden at 80 columns:" in out
    assert " msgs " not in out.splitlines()[2]


def test_given_wide_when_listed_then_every_column_is_shown(ticket_rows: list[dict[str, Any]]) -> None:
    out = _render(80, lambda console: render_tickets(console, ticket_rows, tables.Shape(wide=True)))
    assert "msgs" in out
    assert LONG_SUBJECT in out


def test_given_columns_when_listed_then_those_and_the_key_columns_are_shown(ticket_rows: list[dict[str, Any]]) -> None:
    out = _render(80, lambda console: render_tickets(console, ticket_rows, tables.Shape.parse(False, "team,msgs")))
    header = next(line for line in out.splitlines() if "number" in line)
    assert [c for c in ("number", "status", "next due", "team", "msgs", "subject") if c in header] == ["number", "status", "next due", "team", "msgs"]


# -- report ---------------------------------------------------------------------------------------------
@pytest.fixture
def report(engine: Engine) -> dict[str, Any]:
    for month in range(3):
        seed_ticket(engine, subject=LONG_SUBJECT, opened=NOW - timedelta(days=31 * month, hours=1), type_=("schema", "standard_change", "tools")[month])
    with engine.connect() as c:
        data = full_report(c, None, NOW)
    data["period"] = {"since": None, "until": NOW}
    return data


@pytest.mark.parametrize("width", WIDTHS)
def test_given_a_report_when_printed_at_a_width_then_no_line_is_wider(report: dict[str, Any], width: int) -> None:
    out = _render(width, lambda console: render_report(console, report))
    assert _lines_fit(out, width), out


@pytest.mark.parametrize("width", WIDTHS)
def test_given_a_report_when_printed_at_a_width_then_months_are_whole(report: dict[str, Any], width: int) -> None:
    out = _render(width, lambda console: render_report(console, report))
    months = set(report["by_month"]["type"])
    assert len(months) == 3
    assert all(re.search(rf"│ {month} ", out) for month in months), out


@pytest.mark.parametrize("width", WIDTHS)
def test_given_a_report_when_printed_at_a_width_then_titles_do_not_wrap(report: dict[str, Any], width: int) -> None:
    out = _render(width, lambda console: render_report(console, report))
    assert "Backlog at the end of the period" in out


def test_given_no_measurements_when_the_report_is_printed_then_it_says_no_data(report: dict[str, Any]) -> None:
    out = _render(80, lambda console: render_report(console, report))
    assert "first response no data" in out
    assert "— %" not in out


def test_given_a_period_when_the_report_is_printed_then_its_header_has_dates_and_one_time_zone(report: dict[str, Any]) -> None:
    out = _render(80, lambda console: render_report(console, report))
    header = out.splitlines()[0]
    assert header == f"Management information · all time to {NOW:%Y-%m-%d} (UTC)"


@pytest.mark.parametrize("width", WIDTHS)
def test_given_a_breakdown_when_printed_at_a_width_then_every_combination_is_whole(engine: Engine, report: dict[str, Any], width: int) -> None:
    with engine.connect() as c:
        rows = grouped(c, ("month", "type", "organisation"), None, NOW)
    data = {"period": {"since": None, "until": NOW}, "by": ["month", "type", "organisation"], "tickets": 3, "rows": rows}
    out = _render(width, lambda console: render_grouped(console, data))
    assert _lines_fit(out, width), out
    assert all(f"│ {row['month']} │ {row['type'].replace('_', ' ')} " in out for row in rows), out
