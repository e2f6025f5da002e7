"""Signing in and out: ``/login`` (fields ``username``, ``password``, ``csrf_token``) and ``/logout``.

Failed attempts are counted in Redis per username and per client address; past
``HELPDESK_WEB_LOGIN_ATTEMPTS`` in ``HELPDESK_WEB_LOGIN_WINDOW_SECONDS`` either one answers 429 without
checking the password. Unknown names cost the same argon2 verification as known ones, and the answer
never says which of the two was wrong.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from storage.credentials import password_hash
from web.context import Web
from web.passwords import verify
from web.security import CSRF_FIELD, client_address, csrf_ok

MAX_USERNAME = 64


def safe_next(target: str | None) -> str:
    """Only a path on this site (no scheme, no host, no //evil.example) may be the place to go after sign-in."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/tickets"
    parts = urlsplit(target)
    return target[:500] if not parts.scheme and not parts.netloc else "/tickets"


def auth_routes(web: Web) -> list[BaseRoute]:
    settings = web.settings

    def login_form(request: Request) -> Response:
        if web.user(request) is not None:
            return web.back(safe_next(request.query_params.get("next")))
        return web.render(request, "login.html", next=safe_next(request.query_params.get("next")))

    async def login(request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=10, max_part_size=4096)
        return await run_in_threadpool(sign_in, request, form)

    def sign_in(request: Request, form: FormData) -> Response:  # argon2, Redis and the database block: a worker thread
        username = str(form.get("username", ""))[:MAX_USERNAME].strip().lower()
        password = str(form.get("password", ""))
        target = safe_next(str(form.get("next", "")))
        if not csrf_ok(request, form.get(CSRF_FIELD)):
            return web.render(request, "login.html", status_code=403, error="The form expired; please try again.", next=target)
        limit, window = settings.web_login_attempts, settings.web_login_window_seconds
        ip = client_address(request)
        wait = max(web.limiter.over("login-user", username, limit), web.limiter.over("login-ip", ip, limit))
        if wait:
            response = web.render(request, "login.html", status_code=429, next=target, username=username,
                                  error=f"Too many attempts. Try again in {wait // 60 + 1} minute(s).")
            response.headers["Retry-After"] = str(wait)
            return response
        person = web.people.get(username)
        stored = password_hash(web.engine, person.key) if person is not None else None
        if person is None or not verify(password, stored):
            web.limiter.hit("login-user", username, limit, window)
            web.limiter.hit("login-ip", ip, limit, window)
            return web.render(request, "login.html", status_code=401, next=target, username=username,
                              error="Wrong username or password.")
        web.limiter.reset("login-user", username)
        web.sessions.start(request, person.key)
        return web.back(target)

    async def logout(request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=5, max_part_size=1024)
        if not csrf_ok(request, form.get(CSRF_FIELD)):
            return web.render(request, "error.html", status_code=403, title="Not allowed", message="The form expired; please try again.")
        await run_in_threadpool(web.sessions.end, request)
        return web.back("/login")

    return [Route("/login", login_form, methods=["GET"]), Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"])]
