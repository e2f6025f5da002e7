"""The staff JSON API: ``/api/v1/tickets`` with bearer tokens (``helpdesk tokens create KEY``), and its OpenAPI
description at ``/api/openapi.json``.

A token stands for the person it was made for: the same roles decide (``view`` to read; each action's own
right to act, through ``TicketActions``, which audits refusals). Answers: 200; 400 bad parameters or body;
401 no or unknown token; 403 the person may not; 404 no such ticket; 413 too large; 415 not JSON;
422 an action the desk does not know or cannot do; 429 over ``HELPDESK_WEB_API_REQUESTS_PER_MINUTE``.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import asdict
from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from storage import dashboard
from storage.credentials import token_owner
from web.context import Web
from web.enquiry import json_body, problem
from web.tickets import perform, ticket_number
from config.queues import enqueue_effect
from workers.desk.permissions import Actor
from workers.errors import Forbidden
from web.errors import ApiError

MAX_BODY = 64 * 1024
ACTIONS = ("reply", "note", "claim", "assign", "reclassify", "pending", "resolve", "reopen")
_WORD = re.compile(r"^[A-Za-z0-9_.:-]{0,64}$")
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    return value


def api_routes(web: Web) -> list[BaseRoute]:
    settings = web.settings

    def caller(request: Request, action: str) -> Actor:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > 200:
            raise ApiError(problem(401, "a bearer token is required (helpdesk tokens create KEY)", headers={"WWW-Authenticate": 'Bearer realm="helpdesk"'}))
        verdict = web.limiter.hit("api-token", token, settings.web_api_requests_per_minute, 60)
        if not verdict.allowed:
            raise ApiError(problem(429, "too many requests; slow down", headers={"Retry-After": str(verdict.retry_after)}))
        owner = token_owner(web.engine, token)
        person = web.people.get(owner)
        if person is None:
            raise ApiError(problem(401, "unknown or revoked token", headers={"WWW-Authenticate": 'Bearer realm="helpdesk", error="invalid_token"'}))
        return web.actions.authorise(person.key, action, None, attempt=f"api:{secrets.token_hex(8)}:{request.url.path[:80]}", who=person.key)

    def guarded(handler):  # noqa: ANN001, ANN202
        def run(request: Request, *args: Any) -> Response:
            try:
                return handler(request, *args)
            except ApiError as exc:
                return exc.response
            except Forbidden as exc:
                return problem(403, exc.reason)
        return run

    @guarded
    def list_tickets(request: Request) -> Response:
        caller(request, "view")
        q = request.query_params
        words = {name: q.get(name, "") for name in ("team", "assignee", "status", "type", "sector", "channel", "language")}
        bad = [name for name, value in words.items() if not _WORD.fullmatch(value)]
        limit = q.get("limit", "100")
        if bad or not limit.isdigit() or not 1 <= int(limit) <= dashboard.MAX_ROWS:
            return problem(400, f"bad parameter(s): {', '.join(bad) or 'limit'} (limit is 1 to {dashboard.MAX_ROWS})")
        f = dashboard.QueueFilter(**{**words, "status": words["status"] or "open"}, needs_triage=q.get("needs_triage") in ("1", "true"),
                                  search=q.get("q", "")[:200], limit=int(limit))
        rows = dashboard.queue(web.engine, f)
        return JSONResponse({"tickets": [_json({"number": f"{web.desk.prefix}-{r.id}", **asdict(r)}) for r in rows]})

    @guarded
    def one_ticket(request: Request) -> Response:
        caller(request, "view")
        ticket_id = ticket_number(web, request.path_params["ref"])
        view = dashboard.ticket_view(web.engine, ticket_id) if ticket_id is not None else None
        if view is None:
            return problem(404, "no such ticket")
        t = {k: v for k, v in view.ticket.items() if k not in ("card_channel", "card_ts")}
        messages = [{k: v for k, v in asdict(m).items() if k != "html"} for m in view.messages]
        return JSONResponse(_json({"number": f"{web.desk.prefix}-{ticket_id}", "ticket": t, "contact": view.contact_name,
                                   "messages": messages, "history": [asdict(e) for e in view.history]}))

    async def act(request: Request) -> Response:
        body = await json_body(request, "the action", MAX_BODY)
        return body if isinstance(body, Response) else await run_in_threadpool(_act, request, body)

    @guarded
    def _act(request: Request, body: bytes) -> Response:  # type: ignore[misc]
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return problem(400, "the body is not valid JSON")
        if not isinstance(data, dict) or data.get("action") not in ACTIONS:
            return problem(400, f"give {{\"action\": one of {', '.join(ACTIONS)}, …}}")
        key = request.headers.get("idempotency-key", "")
        if not _KEY.fullmatch(key):
            return problem(400, "an Idempotency-Key header (1 to 200 visible ASCII characters) is required: a retried request acts once")
        person = caller(request, "view")
        ticket_id = ticket_number(web, request.path_params["ref"])
        if ticket_id is None:
            return problem(404, "no such ticket")
        fields = {k: str(v) for k, v in data.items() if isinstance(v, str)}
        outcome = perform(web, person, ticket_id, data["action"], fields, key=f"api:{person.key}:{key}")
        if outcome is None or outcome.status == "unknown_ticket":
            return problem(404, "no such ticket")
        for effect in outcome.effects:
            enqueue_effect(web.runtime.broker, effect)
        body_out = {"action": outcome.action, "status": outcome.status, "detail": outcome.detail, "message_id": outcome.message_id}
        return JSONResponse(body_out, status_code=422 if outcome.status == "invalid" else 200)

    def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document(web.desk.prefix, ACTIONS))

    return [Route("/api/v1/tickets", list_tickets), Route("/api/v1/tickets/{ref}", one_ticket),
            Route("/api/v1/tickets/{ref}/actions", act, methods=["POST"]), Route("/api/openapi.json", openapi)]


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def openapi_document(prefix: str, actions: tuple[str, ...]) -> dict[str, Any]:
    enquiry_fields = {"name": {"type": "string", "maxLength": 200}, "email": {"type": "string", "format": "email", "maxLength": 254},
                      "subject": {"type": "string", "maxLength": 300}, "message": {"type": "string", "maxLength": 20000},
                      "organisation": {"type": "string", "maxLength": 200}}
    filters = [{"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
               for n in ("status", "team", "assignee", "type", "sector", "channel", "language", "q", "needs_triage")]
    ref = {"name": "ref", "in": "path", "required": True, "schema": {"type": "string", "pattern": f"^{prefix}-[0-9]+$"}}
    auth_errors = {"401": _error("no or unknown bearer token"), "403": _error("the token's person may not do this"),
                   "429": _error("rate-limited; see Retry-After")}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Helpdesk API", "version": "1",
                 "description": "Enquirers write with POST /api/v1/enquiries (no authentication). Staff read and work tickets "
                                "with a bearer token from `helpdesk tokens create KEY`."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "properties": {"error": {"type": "string"}, "fields": {"type": "object"}}, "required": ["error"]},
                "Enquiry": {"type": "object", "properties": enquiry_fields, "required": ["name", "email", "subject", "message"],
                            "additionalProperties": False},
                "Action": {"type": "object", "required": ["action"], "properties": {
                    "action": {"enum": list(actions)}, "text": {"type": "string"}, "canned": {"type": "string"},
                    "member": {"type": "string"}, "field": {"enum": ["type", "sector"]}, "value": {"type": "string"}}},
            },
        },
        "paths": {
            "/api/v1/enquiries": {"post": {
                "summary": "Send an enquiry (becomes a ticket on the web channel; acknowledged by e-mail)",
                "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string", "maxLength": 200}}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Enquiry"}}}},
                "responses": {"202": {"description": "queued", "content": {"application/json": {"schema": {"type": "object", "properties": {
                    "reference": {"type": "string"}, "status": {"const": "queued"}}}}}},
                    "400": _error("not JSON, not an object, or a bad Idempotency-Key"), "413": _error("body too large"),
                    "415": _error("not application/json"), "422": _error("invalid fields (named in `fields`)"),
                    "429": _error("too many enquiries from this address"), "503": _error("could not be queued; send again")}}},
            "/api/v1/tickets": {"get": {"summary": "Tickets, soonest due first", "security": [{"bearer": []}],
                                        "parameters": [*filters, {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}}],
                                        "responses": {"200": {"description": "the tickets"}, "400": _error("bad parameter"), **auth_errors}}},
            "/api/v1/tickets/{ref}": {"get": {"summary": "One ticket with its conversation and history", "security": [{"bearer": []}],
                                              "parameters": [ref], "responses": {"200": {"description": "the ticket"}, "404": _error("no such ticket"), **auth_errors}}},
            "/api/v1/tickets/{ref}/actions": {"post": {
                "summary": "Act on a ticket (the same operations and rights as Slack, the CLI and the dashboard)", "security": [{"bearer": []}],
                "parameters": [ref, {"name": "Idempotency-Key", "in": "header", "required": True, "schema": {"type": "string", "maxLength": 200}}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Action"}}}},
                "responses": {"200": {"description": "done or unchanged"}, "400": _error("bad body or missing Idempotency-Key"),
                              "404": _error("no such ticket"), "413": _error("body too large"), "415": _error("not application/json"),
                              "422": _error("the desk cannot do that (an unknown member, type …)"), **auth_errors}}},
        },
    }
