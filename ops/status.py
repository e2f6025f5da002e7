"""`helpdesk status`: queue health read from Redis, ticket counts from the database."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from ops.runtime import Runtime
from storage.intake_store import QUARANTINE, TICKET
from workers.actors import QUEUES
from workers.queue_state import read_queue


def collect_status(runtime: Runtime) -> dict[str, Any]:
    settings = runtime.settings
    client = runtime.broker.client
    namespace = settings.redis_namespace
    heartbeat_ms = settings.heartbeat_timeout_seconds * 1000
    queues = [read_queue(client, namespace, q, heartbeat_ms).to_dict() for q in QUEUES]
    workers = []
    for key in client.scan_iter(match=f"{namespace}:workers:*", count=100):
        raw = client.get(key)
        if raw:
            info = json.loads(raw)
            info["id"] = key.decode().rsplit(":", 1)[1]
            workers.append(info)
    with runtime.engine.connect().execution_options(readonly=True) as connection:
        tickets = connection.execute(select(func.count()).select_from(TICKET)).scalar_one()
        quarantined = connection.execute(select(func.count()).select_from(QUARANTINE)).scalar_one()
    return {
        "queues": queues,
        "workers": workers,
        "tickets": tickets,
        "quarantined": quarantined,
        "redis": "embedded" if settings.embedded_redis else "external",
        "database": runtime.engine.dialect.name,
    }


def render_status(console: Console, data: dict[str, Any]) -> None:
    table = Table(title="Queues", title_justify="left")
    for column in ("queue", "ready", "delayed", "in flight", "dead-lettered", "oldest", "stranded"):
        table.add_column(column, justify="left" if column == "queue" else "right")
    for q in data["queues"]:
        age = q["oldest_age_seconds"]
        table.add_row(
            q["queue"], str(q["ready"]), str(q["delayed"]), str(q["in_flight"]), str(q["dead_lettered"]),
            "—" if age is None else f"{age:.0f} s", str(q["stranded"]),
        )
    console.print(table)
    console.print(
        f"workers alive: [bold]{len(data['workers'])}[/bold]   tickets: [bold]{data['tickets']}[/bold]   "
        f"quarantined: [bold]{data['quarantined']}[/bold]   redis: {data['redis']}   database: {data['database']}"
    )
