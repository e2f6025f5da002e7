"""The staff's pages: the queue ``/tickets`` (with its live fragment) and one ticket ``/tickets/HD-N`` with its actions.

Every action goes through ``workers.desk.ticket_actions.TicketActions`` (surface "web"): it checks the
person's roles, audits a refusal (answered here with a 403 page) and returns an ``Outcome``; the outbox
keys it names are enqueued for the effects worker (a reply is sent by the worker, not by the web).
Each rendered action form carries a random ``attempt`` id: the same form submitted twice acts once.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import nh3
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from storage import dashboard
from storage.models import utcnow
from web.context import Web
from web.security import CSRF_FIELD, csrf_ok
from config.queues import enqueue_effect
from workers.desk.permissions import Actor
from workers.desk.sla import progress
from workers.desk.replies import suggestions_text
from workers.desk.ticket_actions import Outcome

MAX_TEXT = 50_000
SLA_STATES = ("at_risk", "breached")
_ATTEMPT = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_HTML_TAGS = {"p", "br", "div", "span", "b", "strong", "i", "em", "u", "ul", "ol", "li", "blockquote", "pre", "code", "a",
              "table", "thead", "tbody", "tr", "td", "th", "h1", "h2", "h3", "h4", "hr"}


def sanitise(html: str) -> Markup:
    """Inbound HTML made safe to show: a short list of tags, links only to http(s)/mailto, no images (they track), no styles."""
    return Markup(nh3.clean(html[:500_000], tags=_HTML_TAGS, attributes={"a": {"href"}}, url_schemes={"http", "https", "mailto"},
                            link_rel="noopener noreferrer nofollow", strip_comments=True))


@dataclass(frozen=True)
class Clock:
    name: str
    due: datetime
    state: str  # ok | at_risk | breached | paused
    share: float


def clock_of(web: Web, row: Any, now: datetime) -> Clock | None:
    due = row.due if isinstance(row, dashboard.QueueRow) else None
    if due is None:
        return None
    name, at = due
    if row.sla_paused_at is not None:
        return Clock(name, at, "paused", 0.0)
    share = progress(row.created_at, at, now, web.desk.calendar(row.team))
    state = "breached" if share >= 1.0 else "at_risk" if share >= web.desk.config.sla.warn_at else "ok"
    return Clock(name, at, state, share)


def parse_filter(request: Request, user: Actor) -> tuple[dashboard.QueueFilter, str]:
    q = request.query_params

    def word(name: str) -> str:
        value = q.get(name, "")[:64]
        return value if re.fullmatch(r"[A-Za-z0-9_.:-]*", value) else ""

    assignee = word("assignee")
    if assignee == "me":
        assignee = user.key
    after = q.get("after", "0")
    f = dashboard.QueueFilter(team=word("team"), assignee=assignee, status=word("status") or "open", type=word("type"),
                              sector=word("sector"), channel=word("channel"), language=word("language"),
                              needs_triage=q.get("triage") == "1", search=q.get("q", "")[:200],
                              after_id=int(after) if after.isdigit() and len(after) < 10 else 0)
    sla = word("sla")
    return f, sla if sla in SLA_STATES else ""


def ticket_number(web: Web, ref: str) -> int | None:
    prefix, _, number = ref.rpartition("-")
    if prefix.upper() != web.desk.prefix or not number.isdigit() or len(number) > 9:
        return None
    return int(number)


def ticket_routes(web: Web) -> list[BaseRoute]:
    config = web.desk.config

    def rows_for(request: Request, user: Actor) -> tuple[list[tuple[dashboard.QueueRow, Clock | None]], dashboard.QueueFilter, str]:
        f, sla = parse_filter(request, user)
        now = utcnow()
        if sla:  # the clocks are business time of each team's calendar: computed here, over the open tickets
            f = dashboard.QueueFilter(**{**f.__dict__, "limit": dashboard.MAX_ROWS})
        rows = [(r, clock_of(web, r, now)) for r in dashboard.queue(web.engine, f)]
        if sla:
            rows = [(r, c) for r, c in rows if c is not None and (c.state == sla or (sla == "at_risk" and c.state == "breached"))][:200]
        return rows, f, sla

    def choices() -> dict[str, Any]:
        members = sorted({m.key: m.name for t in config.teams.teams.values() for m in t.members}.items(), key=lambda kv: kv[1])
        return {"teams": {k: t.name for k, t in config.teams.teams.items()}, "types": list(config.taxonomy.types),
                "sectors": list(config.taxonomy.sectors), "languages": list(web.settings.languages),
                "channels": ["email", "slack", "x", "web"], "members": members,
                "statuses": ["open", "new", "pending", "resolved", "all"]}

    def queue_page(request: Request) -> Response:
        user = web.require(request, "view")
        rows, f, sla = rows_for(request, user)
        return web.render(request, "queue.html", nav="tickets", rows=rows, f=f, sla=sla, choices=choices(),
                          newest=dashboard.newest_ticket_id(web.engine), poll=web.settings.web_poll_seconds,
                          query=request.url.query)

    def queue_rows(request: Request) -> Response:
        """The table body alone, for the page's live update (plain JS asks for it every few seconds).

        Signed out (the session expired), it answers 401 rather than the sign-in page: the script reloads the page."""
        if web.user(request) is None:
            return Response("sign in again", status_code=401, media_type="text/plain")
        user = web.require(request, "view")
        rows, _, _ = rows_for(request, user)
        seen = request.query_params.get("seen", "0")
        response = web.render(request, "_queue_rows.html", rows=rows, fresh_after=int(seen) if seen.isdigit() and len(seen) < 10 else 0)
        response.headers["X-Newest-Ticket"] = str(dashboard.newest_ticket_id(web.engine))
        response.headers["X-Ticket-Count"] = str(len(rows))
        return response

    def ticket_page(request: Request) -> Response:
        web.require(request, "view")
        ticket_id = ticket_number(web, request.path_params["ref"])
        view = dashboard.ticket_view(web.engine, ticket_id) if ticket_id is not None else None
        if view is None:
            return web.missing(request, "No such ticket.")
        clock = clock_of(web, dashboard.row_of(view), utcnow())
        show_html = request.query_params.get("html") == "1"
        html = {m.id: sanitise(m.html) for m in view.messages if show_html and m.html}
        return web.render(request, "ticket.html", nav="tickets", view=view, t=view.ticket, clock=clock, html=html, show_html=show_html,
                          choices=choices(), attempt=secrets.token_urlsafe(12), canned=sorted(config.templates.canned),
                          documentation=linkable(view.ticket.get("suggestions")), number=f"{web.desk.prefix}-{ticket_id}")

    async def act(request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=20, max_part_size=MAX_TEXT * 4)
        return await run_in_threadpool(_act, request, form)

    def _act(request: Request, form: FormData) -> Response:
        user = web.user(request)
        if user is None:
            return web.back("/login")
        ticket_id = ticket_number(web, request.path_params["ref"])
        if ticket_id is None:
            return web.missing(request, "No such ticket.")
        page = f"/tickets/{web.desk.prefix}-{ticket_id}"
        if not csrf_ok(request, form.get(CSRF_FIELD)):
            return web.render(request, "error.html", status_code=403, title="Not allowed", message="The form expired; reload the page and try again.")
        attempt = str(form.get("attempt", ""))
        if not _ATTEMPT.fullmatch(attempt):
            return web.render(request, "error.html", status_code=400, title="Bad request", message="The form is incomplete; reload the page.")
        outcome = perform(web, user, ticket_id, request.path_params["action"], form, key=f"web:{attempt}")
        if outcome is None:
            return web.missing(request, "No such action.")
        for effect in outcome.effects:
            enqueue_effect(web.runtime.broker, effect)
        return web.back(page, request, describe(outcome))

    return [Route("/tickets", queue_page), Route("/tickets/rows", queue_rows),
            Route("/tickets/{ref}", ticket_page), Route("/tickets/{ref}/{action}", act, methods=["POST"])]


def perform(web: Web, user: Actor, ticket_id: int, action: str, form: Mapping[str, Any], *, key: str) -> Outcome | None:
    """One action through TicketActions; Forbidden propagates (the app answers 403, TicketActions audited it)."""
    actions = web.actions
    text = str(form.get("text", ""))[:MAX_TEXT]
    if action == "reply":
        canned = str(form.get("canned", ""))[:64]
        if canned and not text.strip():
            return actions.canned(user.key, ticket_id, canned, key=key)
        picked = form.getlist("doc") if isinstance(form, FormData) else form.get("doc", [])
        return actions.reply(user.key, ticket_id, with_documentation(web, ticket_id, text, picked), key=key)
    if action == "note":
        return actions.note(user.key, ticket_id, text, key=key)
    if action == "claim":
        return actions.claim(user.key, ticket_id, key=key)
    if action == "assign":
        return actions.assign(user.key, ticket_id, str(form.get("member", ""))[:64], key=key)
    if action == "reclassify":
        field = str(form.get("field", ""))
        if field not in ("type", "sector"):
            return Outcome("reclassify", ticket_id, "invalid", detail="choose the type or the sector")
        return actions.reclassify(user.key, ticket_id, field, str(form.get("value", ""))[:64], key=key)  # type: ignore[arg-type]
    if action in ("pending", "resolve", "reopen"):
        return getattr(actions, action)(user.key, ticket_id, key=key)
    return None


def with_documentation(web: Web, ticket_id: int, text: str, picked: Any) -> str:
    """The reply text with the documentation suggestions the person ticked (by their position on the page) appended
    under the desk's heading in the ticket's language; unknown positions are ignored, and nothing is added to an empty
    reply (it stays invalid: a reply is the person's words, with links as a complement)."""
    if not text.strip() or not isinstance(picked, (list, tuple)):
        return text
    view = dashboard.ticket_view(web.engine, ticket_id)
    if view is None:
        return text
    offered = linkable(view.ticket.get("suggestions"))
    chosen = [offered[int(p)] for p in dict.fromkeys(str(p) for p in picked[:10]) if p.isdigit() and int(p) < len(offered)]
    if not chosen:
        return text
    ticket = SimpleNamespace(suggestions=chosen, language=view.ticket.get("language"))
    return f"{text.rstrip()}\n{suggestions_text(ticket, web.desk.config.templates)}"


def linkable(suggestions: Any) -> list[dict[str, Any]]:
    """The ticket's documentation suggestions that can be sent as links (an http(s) URL), at most three."""
    found = [s for s in (suggestions or []) if isinstance(s, dict) and str(s.get("url", "")).startswith(("https://", "http://"))]
    return found[:3]


def describe(outcome: Outcome) -> str:
    words = {"done": "Done", "unchanged": "Nothing changed", "unknown_ticket": "No such ticket", "invalid": "Not done"}
    text = f"{outcome.action.capitalize()}: {words[outcome.status]}"
    return f"{text} — {outcome.detail}" if outcome.detail else text
