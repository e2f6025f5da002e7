"""What the web's routes share, built once per app from the runtime: settings, engine, broker, desk, people,
the ticket actions, templates, rate limits and sessions."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from config.desk import load_desk
from config.settings import Settings
from ops.runtime import Runtime
from web.security import RateLimiter, Sessions, csrf_token
from workers.desk.operations import Desk
from workers.desk.permissions import Actor, Staff
from workers.errors import Forbidden
from workers.desk.ticket_actions import TicketActions
from web.errors import NotSignedIn

HERE = Path(__file__).resolve().parent


def when(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return value.astimezone(timezone.utc).strftime(fmt) + " UTC" if value is not None else "—"


@dataclass
class Web:
    runtime: Runtime
    settings: Settings
    desk: Desk
    people: Staff
    actions: TicketActions
    templates: Jinja2Templates
    limiter: RateLimiter
    sessions: Sessions

    @classmethod
    def build(cls, runtime: Runtime) -> "Web":
        settings = runtime.settings
        desk = Desk(load_desk(settings), settings.ticket_prefix)
        people = Staff(desk.config)
        templates = Jinja2Templates(directory=str(HERE / "templates"))
        templates.env.globals.update(prefix=settings.ticket_prefix, when=when)
        templates.env.filters["when"] = when
        client = runtime.broker.client
        ns = settings.redis_namespace
        return cls(runtime, settings, desk, people, TicketActions(runtime.engine, desk, surface="web", people=people), templates,
                   RateLimiter(client, ns), Sessions(client, ns, int(settings.web_session_hours * 3600)))

    @property
    def engine(self) -> Any:
        return self.runtime.engine

    # -- who is asking -----------------------------------------------------------------------------
    def user(self, request: Request) -> Actor | None:
        return self.people.get(self.sessions.user(request))

    def require(self, request: Request, action: str) -> Actor:
        """The signed-in person if their roles allow ``action``; NotSignedIn or Forbidden (audited) otherwise."""
        user = self.user(request)
        if user is None:
            raise NotSignedIn()
        return self.actions.authorise(user.key, action, None, attempt=f"page:{secrets.token_hex(8)}:{request.url.path[:80]}")

    # -- answers ---------------------------------------------------------------------------------------
    def render(self, request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        user = self.user(request)
        context.update(request=request, user=user, csrf=Markup.escape(csrf_token(request)), settings=self.settings,
                       may=lambda action: user is not None and self.people.may(user.key, action),
                       flash=None if name.startswith("_") else request.session.pop("flash", None))  # fragments leave it for the page
        return self.templates.TemplateResponse(request, name, context, status_code=status_code)

    def refused(self, request: Request, exc: Forbidden) -> Response:
        return self.render(request, "error.html", status_code=403, title="Not allowed", message=exc.reason)

    def missing(self, request: Request, what: str = "This page does not exist.") -> Response:
        return self.render(request, "error.html", status_code=404, title="Not found", message=what)

    def back(self, url: str, request: Request | None = None, flash: str | None = None) -> RedirectResponse:
        if request is not None and flash:
            request.session["flash"] = flash[:300]
        return RedirectResponse(url, status_code=303)
