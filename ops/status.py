"""`helpdesk status`: is intake healthy? Queues, throughput, workers, adapters, problems.

Always an answer: when Redis or the database cannot be reached the status is
``unreachable``, ``components`` names which one (``ok`` / ``unreachable``),
``errors`` says why, and the exit code is 2 — a monitor parsing the JSON never
gets an empty body.
"""

from __future__ import annotations

import time
from typing import Any

import redis
from sqlalchemy.exc import SQLAlchemyError

from rich.console import Console
from rich.table import Table

from ops.runtime import Runtime
from workers.actors import QUEUES
from workers.health import desk_snapshot


EXIT_OK, EXIT_UNHEALTHY, EXIT_UNREACHABLE = 0, 1, 2


def status_report(runtime: Runtime, *, strict: bool = False) -> tuple[dict[str, Any], int]:
    """The status document and the exit code: 0 healthy (or warnings), 1 unhealthy (or warnings with ``strict``), 2 unreachable."""
    try:
        reach = runtime.reachability()
    except Exception as exc:  # noqa: BLE001 - e.g. the embedded Redis could not start: still an answer
        reach = {"redis": f"{type(exc).__name__}: {exc}", "database": "not checked"}
    if all(v == "ok" for v in reach.values()):
        try:
            data = collect_status(runtime)
        except (redis.RedisError, SQLAlchemyError, OSError) as exc:  # went away between the check and the reading
            reach = runtime.reachability()
            if all(v == "ok" for v in reach.values()):
                reach["redis" if isinstance(exc, redis.RedisError) else "database"] = f"{type(exc).__name__}: {exc}"
        else:
            data["components"] = dict(reach)
            failing = data["status"] == "unhealthy" or (strict and data["status"] == "warning")
            return data, EXIT_UNHEALTHY if failing else EXIT_OK
    return unreachable_status(runtime, reach), EXIT_UNREACHABLE


def unreachable_status(runtime: Runtime, reach: dict[str, str]) -> dict[str, Any]:
    """What can be said while a component is down: which one, why, and the queues if Redis answers."""
    settings = runtime.settings
    components = {name: "ok" if value == "ok" else "unreachable" for name, value in reach.items()}
    data: dict[str, Any] = {
        "status": "unreachable",
        "components": components,
        "errors": {name: value for name, value in reach.items() if value != "ok"},
        "redis": "embedded" if settings.embedded_redis else "external",
        "database": runtime.database.dialect.name,
        "queues": [],
        "problems": [
            {"condition": "unreachable", "subject": name, "severity": "unhealthy", "detail": f"{name} unreachable: {value}"[:500]}
            for name, value in reach.items() if value != "ok"
        ],
    }
    if components.get("redis") == "ok":
        from workers.queue_state import read_queue  # noqa: PLC0415

        try:
            data["queues"] = [read_queue(runtime.broker.client, settings.redis_namespace, q,
                                         settings.heartbeat_timeout_seconds * 1000).to_dict() for q in QUEUES]
        except redis.RedisError:
            pass
    return data


def collect_status(runtime: Runtime) -> dict[str, Any]:
    settings = runtime.settings
    snap = desk_snapshot(settings, runtime.broker.client, runtime.engine, QUEUES)
    data = snap.to_dict()
    data["redis"] = "embedded" if settings.embedded_redis else "external"
    data["database"] = runtime.engine.dialect.name
    if "quarantined" not in data:
        # The number `helpdesk dlq list` shows (and `helpdesk import` reports): open dead letters and rejected input.
        from workers.dlq import open_letters  # noqa: PLC0415

        data["quarantined"] = max(len(open_letters(runtime.engine)), data["dead_letters_open"])
    return data


def render_status(console: Console, data: dict[str, Any]) -> None:
    if data["status"] == "unreachable":
        parts = " · ".join(f"{name} {state}" for name, state in data["components"].items())
        console.print(f"intake is [bold red]unreachable[/bold red] · {parts}")
        for problem in data["problems"]:
            console.print(f"[red]✗[/red] {problem['detail']}")
        return
    colour = {"ok": "green", "warning": "yellow", "unhealthy": "red"}[data["status"]]
    console.print(f"intake is [bold {colour}]{data['status']}[/bold {colour}] · redis {data['redis']} · database {data['database']} · "
                  f"tickets {data['tickets']:,}")
    table = Table(title="Queues", title_justify="left")
    for column in ("queue", "ready", "delayed", "in flight", "dead-lettered", "oldest", "stranded", "processed/min", "failed/min"):
        table.add_column(column, justify="left" if column == "queue" else "right")
    for q in data["queues"]:
        age = q["oldest_age_seconds"]
        rate = data["throughput_per_minute"].get(q["queue"], {})
        table.add_row(q["queue"], str(q["ready"]), str(q["delayed"]), str(q["in_flight"]), str(q["dead_lettered"]),
                      "—" if age is None else f"{age:.0f} s", str(q["stranded"]),
                      f"{rate.get('processed', 0):g}", f"{rate.get('failed', 0):g}")
    console.print(table)
    workers = Table(title=f"Workers alive ({len(data['workers'])})", title_justify="left")
    for column in ("id", "host", "pid", "threads", "up"):
        workers.add_column(column)
    for w in data["workers"]:
        workers.add_row(w["id"][:8], str(w.get("host")), str(w.get("pid")), str(w.get("threads")), f"{time.time() - w.get('started', time.time()):.0f} s")
    console.print(workers)
    if data["adapters"]:
        adapters = Table(title="Adapters", title_justify="left")
        for column in ("adapter", "checkpoint", "last success", "last error"):
            adapters.add_column(column, overflow="fold")
        for name, info in sorted(data["adapters"].items()):
            checkpoint = info.get("checkpoint")
            adapters.add_row(name, f"uid {checkpoint['last_uid']} (validity {checkpoint['uidvalidity']})" if checkpoint else "—",
                             _ago(info.get("last_success")), f"{_ago(info.get('last_error_at'))} {info.get('last_error', '')[:80]}".strip())
        console.print(adapters)
    for problem in data["problems"]:
        mark = "[red]✗[/red]" if problem["severity"] == "unhealthy" else "[yellow]![/yellow]"
        console.print(f"{mark} {problem['detail']}")


def _ago(timestamp: Any) -> str:
    if not timestamp:
        return "—"
    return f"{time.time() - float(timestamp):.0f} s ago"
