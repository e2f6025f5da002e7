"""`helpdesk status`: is intake healthy? Queues, throughput, workers, adapters, problems."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.table import Table

from ops.runtime import Runtime
from workers.actors import QUEUES
from workers.health import desk_snapshot


def collect_status(runtime: Runtime) -> dict[str, Any]:
    settings = runtime.settings
    snap = desk_snapshot(settings, runtime.broker.client, runtime.engine, QUEUES)
    data = snap.to_dict()
    data["redis"] = "embedded" if settings.embedded_redis else "external"
    data["database"] = runtime.engine.dialect.name
    data["quarantined"] = data["dead_letters_open"]
    return data


def render_status(console: Console, data: dict[str, Any]) -> None:
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
