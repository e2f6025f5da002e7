"""``/ops``: queue health for operators — queues, workers, adapters, problems, dead letters and quarantined input —
from the same ``workers.ops.health.desk_snapshot`` as ``helpdesk status``, with show and replay of each letter.

Viewing needs ``ops.view``; replaying needs ``dlq.replay`` (both checked here through TicketActions'
``authorise``, which audits a refusal).
"""

from __future__ import annotations

import secrets

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from web.context import Web
from web.security import CSRF_FIELD, csrf_ok
from workers.ops import dlq
from workers.ops.health import desk_snapshot

MAX_LETTERS = 200


def ops_routes(web: Web) -> list[BaseRoute]:
    from config.queues import QUEUES  # noqa: PLC0415

    runtime = web.runtime

    def page(request: Request) -> Response:
        web.require(request, "ops.view")
        snap = desk_snapshot(web.settings, runtime.broker.client, web.engine, QUEUES)
        letters = dlq.open_letters(web.engine)[-MAX_LETTERS:]
        return web.render(request, "ops.html", nav="ops", snap=snap, letters=list(reversed(letters)))

    def letter(request: Request) -> Response:
        web.require(request, "ops.view")
        row = dlq.find(web.engine, request.path_params["ident"][:64])
        if row is None:
            return web.missing(request, "No such dead letter.")
        return web.render(request, "letter.html", nav="ops", row=row, attempt=secrets.token_urlsafe(12))

    async def replay(request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=5, max_part_size=1024)
        if not csrf_ok(request, form.get(CSRF_FIELD)):
            return web.render(request, "error.html", status_code=403, title="Not allowed", message="The form expired; reload the page.")
        return await run_in_threadpool(_replay, request, str(form.get("attempt", ""))[:64])

    def _replay(request: Request, attempt: str) -> Response:
        user = web.user(request)
        if user is None:
            return web.back("/login")
        web.actions.authorise(user.key, "dlq.replay", None, attempt=f"dlq:{attempt or secrets.token_hex(6)}")
        row = dlq.find(web.engine, request.path_params["ident"][:64])
        if row is None:
            return web.missing(request, "No such dead letter.")
        result = dlq.replay(runtime.broker.client, web.settings.redis_namespace, runtime.broker, web.engine, row,
                            runtime.ingestor if row.kind == "rejected" else None, runtime.archive)
        return web.back("/ops", request, f"Letter {row.id}: {result.outcome}")

    return [Route("/ops", page), Route("/ops/letters/{ident}", letter), Route("/ops/letters/{ident}/replay", replay, methods=["POST"])]
