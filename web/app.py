"""The web dashboard as one Starlette sub-application, built by ``web_app(runtime)``.

``ops.web.build_app`` mounts it after the health, metrics and Slack routes, which keep their own
guards. Middleware, outermost first: body size bound, security headers, the signed session cookie
(HttpOnly, SameSite=Lax, Secure with ``HELPDESK_WEB_SECURE_COOKIES``), keyed with the desk's secret.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from urllib.parse import quote

from config.secrets import desk_secret
from ops.runtime import Runtime
from web.auth import auth_routes
from web.context import HERE, Web
from web.errors import NotSignedIn
from web.security import BodyLimit, SecurityHeaders
from workers.errors import Forbidden
MAX_BODY_BYTES = 256 * 1024
SESSION_COOKIE = "helpdesk_session"


def session_key(secret: bytes) -> str:
    """A key of its own for session cookies, derived from the desk's secret (which also keys ticket references)."""
    return hmac.new(secret, b"helpdesk web session cookies", hashlib.sha256).hexdigest()


def web_app(runtime: Runtime) -> Starlette:
    from web.api import api_routes  # noqa: PLC0415
    from web.enquiry import enquiry_routes  # noqa: PLC0415
    from web.operations import ops_routes  # noqa: PLC0415
    from web.reports import report_routes  # noqa: PLC0415
    from web.tickets import ticket_routes  # noqa: PLC0415

    web = Web.build(runtime)
    settings = runtime.settings

    def home(request: Request) -> Response:
        return RedirectResponse("/tickets" if web.user(request) else "/login", status_code=303)

    routes = [Route("/", home), *auth_routes(web), *ticket_routes(web), *enquiry_routes(web), *report_routes(web), *ops_routes(web),
              *api_routes(web)]
    routes.append(Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"))

    def not_signed_in(request: Request, exc: Exception) -> Response:
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)

    def forbidden(request: Request, exc: Exception) -> Response:
        return web.refused(request, exc)  # type: ignore[arg-type]

    def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return web.missing(request)
        return web.render(request, "error.html", status_code=exc.status_code, title="Error", message=str(exc.detail))

    middleware = [
        Middleware(BodyLimit, max_bytes=MAX_BODY_BYTES),
        Middleware(SecurityHeaders),
        Middleware(SessionMiddleware, secret_key=session_key(desk_secret(settings)), session_cookie=SESSION_COOKIE,
                   max_age=int(settings.web_session_hours * 3600), same_site="lax", https_only=settings.web_secure_cookies),
    ]
    app = Starlette(routes=routes, middleware=middleware,
                    exception_handlers={NotSignedIn: not_signed_in, Forbidden: forbidden, HTTPException: http_error})
    app.state.web = web
    return app

