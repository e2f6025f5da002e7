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

from ops import tables
from ops.runtime import Runtime
from ops.views import safe
from config.queues import QUEUES
from workers.ops.health import desk_snapshot


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
        from workers.ops.queue_state import read_queue  # noqa: PLC0415

        try:
            data["queues"] = [read_queue(runtime.redis, settings.redis_namespace, q,
                                         settings.heartbeat_timeout_seconds * 1000).to_dict() for q in QUEUES]
        except redis.RedisError:
            pass
    return data


def collect_status(runtime: Runtime) -> dict[str, Any]:
    settings = runtime.settings
    snap = desk_snapshot(settings, runtime.redis, runtime.engine, QUEUES)
    data = snap.to_dict()
    data["redis"] = "embedded" if settings.embedded_redis else "external"
    data["database"] = runtime.engine.dialect.name
    if "quarantined" not in data:
        # The number `helpdesk dlq list` shows (and `helpdesk import` reports): open dead letters and rejected input.
        from workers.ops.dlq import open_letters  # noqa: PLC0415

        data["quarantined"] = max(len(open_letters(runtime.engine)), data["dead_letters_open"])
    return data


def render_status(console: Console, data: dict[str, Any], shape: tables.Shape | None = None) -> None:
    if data["status"] == "unreachable":
        parts = " · ".join(f"{name} {state}" for name, state in data["components"].items())
        console.print(f"intake is [bold red]unreachable[/bold red] · {parts}")
        for problem in data["problems"]:
            console.print(f"[red]✗[/red] {problem['detail']}")
        return
    colour = {"ok": "green", "warning": "yellow", "unhealthy": "red"}[data["status"]]
    console.print(f"intake is [bold {colour}]{data['status']}[/bold {colour}] · redis {data['redis']} · database {data['database']} · "
                  f"tickets {data['tickets']:,}")
    right = {"justify": "right"}
    queue_columns = [tables.Column("queue"), tables.Column("ready", **right), tables.Column("in flight", **right),
                     tables.Column("dead-lettered", **right), tables.Column("oldest", **right), tables.Column("delayed", priority=1, **right),
                     tables.Column("stranded", priority=2, **right), tables.Column("failed/min", priority=3, **right),
                     tables.Column("processed/min", priority=4, **right)]
    rows = []
    for q in data["queues"]:
        age = q["oldest_age_seconds"]
        rate = data["throughput_per_minute"].get(q["queue"], {})
        rows.append([q["queue"], str(q["ready"]), str(q["in_flight"]), str(q["dead_lettered"]), "—" if age is None else f"{age:.0f} s",
                     str(q["delayed"]), str(q["stranded"]), f"{rate.get('failed', 0):g}", f"{rate.get('processed', 0):g}"])
    tables.show(console, "Queues", queue_columns, rows, shape)
    worker_columns = [tables.Column(c) for c in ("id", "host", "pid", "threads", "up")]
    tables.show(console, f"Workers alive ({len(data['workers'])})", worker_columns,
                [[w["id"][:8], safe(w.get("host")), str(w.get("pid")), str(w.get("threads")),
                  f"{time.time() - w.get('started', time.time()):.0f} s"] for w in data["workers"]], shape)
    if data["adapters"]:
        adapter_columns = [tables.Column("adapter"), tables.Column("last success"), tables.Column("checkpoint", priority=2),
                           tables.Column("last error", priority=1, flexible=True, min_width=20)]
        rows = []
        for name, info in sorted(data["adapters"].items()):
            checkpoint = info.get("checkpoint")
            rows.append([name, _ago(info.get("last_success")),
                         f"uid {checkpoint['last_uid']} (validity {checkpoint['uidvalidity']})" if checkpoint else "—",
                         safe(f"{_ago(info.get('last_error_at'))} {info.get('last_error', '')[:80]}".strip())])
        tables.show(console, "Adapters", adapter_columns, rows, shape)
    for problem in data["problems"]:
        mark = "[red]✗[/red]" if problem["severity"] == "unhealthy" else "[yellow]![/yellow]"
        console.print(f"{mark} {problem['detail']}")


def _ago(timestamp: Any) -> str:
    if not timestamp:
        return "—"
    return f"{time.time() - float(timestamp):.0f} s ago"
