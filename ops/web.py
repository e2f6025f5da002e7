"""The web process: an ASGI app built by ``create_app`` — health, metrics, (with Slack) the Slack endpoints, and the dashboard.

``/healthz`` answers anyone ("alive", nothing more). ``/readyz`` and ``/metrics`` are for operators:
a bearer token (``HELPDESK_OPS_TOKEN``) or, without one, clients on this machine only.

Nothing is registered at import time: routes and their dependencies come in
through the factory, so tests build apps of their own.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from config.settings import Settings
from ops.metrics import HelpdeskCollector, dramatiq_collector
from ops.runtime import Runtime
from storage import schema
from storage.db import ping

log = structlog.get_logger("helpdesk.web")


LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def operator_only(settings: Settings) -> Callable[[Request], Response | None]:
    """The guard of the operational endpoints: None lets the request in, otherwise the refusal.

    With ``HELPDESK_OPS_TOKEN`` set, a request needs ``Authorization: Bearer <token>``; without it, only
    clients on this machine (loopback) are answered. Behind a reverse proxy every client looks local:
    set the token there.
    """
    token = settings.ops_token.get_secret_value().encode("utf-8") if settings.ops_token else None

    def guard(request: Request) -> Response | None:
        if token is not None:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode("utf-8", "replace"), token):
                return None
            return PlainTextResponse("bearer token required", status_code=401, headers={"WWW-Authenticate": 'Bearer realm="helpdesk-ops"'})
        host = request.client.host if request.client else ""
        if host in LOOPBACK:
            return None
        return PlainTextResponse("operational endpoints answer this machine only (or set HELPDESK_OPS_TOKEN)", status_code=403)

    return guard


def readiness(runtime: Runtime) -> dict[str, str]:
    """Each component's state — a word, never an error text (that names hosts); the error goes to the log."""
    checks: dict[str, str] = {}
    try:
        runtime.broker.client.ping()
        checks["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["redis"] = "unreachable"
        log.warning("readiness: redis unreachable", error=f"{type(exc).__name__}: {exc}")
    try:
        ping(runtime.engine)
        checks["database"] = "ok"
        checks["migrations"] = "ok" if schema.is_current(runtime.engine) else "pending"
    except Exception as exc:  # noqa: BLE001
        checks["database"] = "unreachable"
        log.warning("readiness: database unreachable", error=f"{type(exc).__name__}: {exc}")
    return checks


def health_routes(runtime: Runtime, queues: tuple[str, ...]) -> list[BaseRoute]:
    settings = runtime.settings
    registry = CollectorRegistry()
    registry.register(HelpdeskCollector(settings, runtime.broker.client, runtime.engine, queues))
    dramatiq_metrics = dramatiq_collector()
    if dramatiq_metrics is not None:
        registry.register(dramatiq_metrics)
    guard = operator_only(settings)

    def healthz(request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    def readyz(request: Request) -> Response:  # blocking calls: Starlette runs it in its threadpool
        if (refused := guard(request)) is not None:
            return refused
        checks = readiness(runtime)
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    def metrics(request: Request) -> Response:
        if (refused := guard(request)) is not None:
            return refused
        return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return [Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", metrics)]


def create_app(runtime: Runtime, routes: Sequence[BaseRoute], *, debug: bool = False) -> Starlette:
    return Starlette(debug=debug, routes=list(routes))


def build_app(runtime: Runtime) -> Starlette:
    """The app of `helpdesk web`: health and metrics, the Slack endpoints when Slack is configured, and the
    web dashboard (``web.app``: staff pages, the enquiry form and the JSON APIs) for every other path."""
    from web.app import web_app  # noqa: PLC0415
    from config.queues import QUEUES  # noqa: PLC0415

    routes = health_routes(runtime, QUEUES)
    if runtime.settings.slack_signing_secret:
        from ops.slack_web import slack_routes  # noqa: PLC0415

        routes += slack_routes(runtime)
    routes.append(Mount("", app=web_app(runtime)))  # last: the routes above keep their own guards
    return create_app(runtime, routes)
