"""Where enquirers write: the public form ``/enquiry`` and ``POST /api/v1/enquiries`` (JSON).

Both validate with ``intake.web``, become an ``InboundMessage`` on channel ``web`` and go through the
same queue as every other channel (``intake.queue.QueueSink``); the pipeline opens the ticket and the
acknowledgement goes out by e-mail. Against spam: a honeypot field (a filled one is thanked and
dropped), a per-address limit an hour (``HELPDESK_WEB_ENQUIRIES_PER_HOUR``) and bounded sizes.

API answers: 202 ``{"reference", "status": "queued"}``; 400 not JSON or not an object; 413 too large;
415 not ``application/json``; 422 ``{"error", "fields": {field: problem}}``; 429 with ``Retry-After``;
503 when the queue cannot take it (nothing was accepted: send again).
"""

from __future__ import annotations

import json
import re
import secrets

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from intake.errors import InvalidEnquiry, SinkError
from intake.web import parse, reference, to_inbound
from web.context import Web
from web.i18n import TEXTS, pick_language
from web.security import CSRF_FIELD, client_address, csrf_ok

log = structlog.get_logger("helpdesk.web.enquiry")
MAX_JSON_BYTES = 64 * 1024
HOUR = 3600
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
HONEYPOT = "website"


def enquiry_routes(web: Web) -> list[BaseRoute]:
    settings = web.settings
    sink = web.runtime.sink

    def texts(request: Request) -> tuple[str, dict[str, str]]:
        lang = pick_language(request.headers.get("accept-language", ""), settings.languages)
        return lang, TEXTS[lang]

    def form_page(request: Request, status_code: int = 200, **context: object) -> Response:
        lang, t = texts(request)
        context.setdefault("values", {})
        context.setdefault("problems", {})
        return web.render(request, "enquiry.html", status_code=status_code, lang=lang, t=t, submission=secrets.token_urlsafe(16), **context)

    def show_form(request: Request) -> Response:
        return form_page(request)

    async def submit(request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=12, max_part_size=64 * 1024)
        return await run_in_threadpool(_submit, request, {k: form.get(k) for k in form.keys()})

    def _submit(request: Request, form: dict[str, object]) -> Response:
        lang, t = texts(request)
        if not csrf_ok(request, form.pop(CSRF_FIELD, None)):
            return form_page(request, 403, error=t["expired"], values=form)
        submission = str(form.pop("submission", "") or "")[:64]
        if form.pop(HONEYPOT, None):  # a robot filled the field people cannot see: thank it, keep nothing
            log.info("enquiry honeypot filled")
            return web.render(request, "enquiry_done.html", lang=lang, t=t, reference=reference(secrets.token_hex(8)), email="")
        verdict = web.limiter.hit("enquiry-ip", client_address(request), settings.web_enquiries_per_hour, HOUR)
        if not verdict.allowed:
            response = form_page(request, 429, error=t["too_many"], values=form)
            response.headers["Retry-After"] = str(verdict.retry_after)
            return response
        fields = {k: v for k, v in form.items() if isinstance(v, str) and (k != "organisation" or v.strip())}
        try:
            enquiry = parse(fields)
        except InvalidEnquiry as exc:
            problems = {k: t.get(v, v) for k, v in exc.problems.items()}
            return form_page(request, 422, error=t["errors"], problems=problems, values=form)
        message = to_inbound(enquiry, client_key=submission or None, via="form")
        try:
            sink.put(message)
        except SinkError:
            log.warning("enquiry not queued", via="form")
            return form_page(request, 503, error=t["unavailable"], values=form)
        return web.render(request, "enquiry_done.html", status_code=200, lang=lang, t=t, reference=reference(message.external_id),
                          email=enquiry.email)

    async def api(request: Request) -> Response:
        body = await json_body(request, "the enquiry")
        return body if isinstance(body, Response) else await run_in_threadpool(_api, request, body)

    def _api(request: Request, body: bytes) -> Response:
        key = request.headers.get("idempotency-key")
        if key is not None and not _KEY.fullmatch(key):
            return problem(400, "Idempotency-Key must be 1 to 200 visible ASCII characters")
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return problem(400, "the body is not valid JSON")
        if not isinstance(data, dict):
            return problem(400, "the body must be a JSON object with name, email, subject, message and optionally organisation")
        verdict = web.limiter.hit("enquiry-ip", client_address(request), settings.web_enquiries_per_hour, HOUR)
        if not verdict.allowed:
            return problem(429, "too many enquiries from this address; try again later", headers={"Retry-After": str(verdict.retry_after)})
        try:
            enquiry = parse(data)
        except InvalidEnquiry as exc:
            return problem(422, "the enquiry is not valid", fields=exc.problems)
        message = to_inbound(enquiry, client_key=key, via="api")
        try:
            sink.put(message)
        except SinkError:
            log.warning("enquiry not queued", via="api")
            return problem(503, "the enquiry could not be queued; nothing was accepted, send it again", headers={"Retry-After": "30"})
        return JSONResponse({"reference": reference(message.external_id), "status": "queued"}, status_code=202)

    return [Route("/enquiry", show_form, methods=["GET"]), Route("/enquiry", submit, methods=["POST"]),
            Route("/api/v1/enquiries", api, methods=["POST"])]


async def json_body(request: Request, what: str, limit: int = MAX_JSON_BYTES) -> bytes | Response:
    """The raw JSON body, or the 415 / 413 answer when it is not JSON or too large."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        return problem(415, f"send {what} as JSON (Content-Type: application/json)")
    body = await request.body()
    if len(body) > limit:
        return problem(413, f"the body may be at most {limit} bytes")
    return body


def problem(status: int, error: str, *, headers: dict[str, str] | None = None, **extra: object) -> JSONResponse:
    return JSONResponse({"error": error, **extra}, status_code=status, headers=headers)
