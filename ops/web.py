"""The web process: an ASGI app built by ``create_app`` — health, metrics, and (with Slack) the Slack endpoints.

Nothing is registered at import time: routes and their dependencies come in
through the factory, so tests build apps of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from sqlalchemy import text

from ops.metrics import HelpdeskCollector, dramatiq_collector
from ops.runtime import Runtime
from storage import schema


def health_routes(runtime: Runtime, queues: tuple[str, ...]) -> list[BaseRoute]:
    settings = runtime.settings
    registry = CollectorRegistry()
    registry.register(HelpdeskCollector(settings, runtime.broker.client, runtime.engine, queues))
    dramatiq_metrics = dramatiq_collector()
    if dramatiq_metrics is not None:
        registry.register(dramatiq_metrics)

    def healthz(request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    def readyz(request: Request) -> Response:  # blocking calls: Starlette runs it in its threadpool
        checks: dict[str, Any] = {}
        try:
            runtime.broker.client.ping()
            checks["redis"] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means not ready; say which
            checks["redis"] = f"{type(exc).__name__}: {exc}"
        try:
            with runtime.engine.connect() as c:
                c.execute(text("SELECT 1"))
            checks["database"] = "ok"
            checks["migrations"] = "ok" if schema.is_current(runtime.engine) else "pending: run `helpdesk db upgrade`"
        except Exception as exc:  # noqa: BLE001
            checks["database"] = f"{type(exc).__name__}: {exc}"
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    def metrics(request: Request) -> Response:
        return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return [Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", metrics)]


def create_app(runtime: Runtime, routes: Sequence[BaseRoute], *, debug: bool = False) -> Starlette:
    return Starlette(debug=debug, routes=list(routes))


def build_app(runtime: Runtime) -> Starlette:
    """The app of `helpdesk web`: health and metrics, plus the Slack endpoints when Slack is configured."""
    from workers.actors import QUEUES  # noqa: PLC0415

    routes = health_routes(runtime, QUEUES)
    if runtime.settings.slack_signing_secret:
        from ops.slack_web import slack_routes  # noqa: PLC0415

        routes += slack_routes(runtime)
    return create_app(runtime, routes)
