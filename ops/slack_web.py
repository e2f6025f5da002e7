"""``POST /slack/events``: Slack's Events API, interactivity and the ``/helpdesk`` slash command on one URL.

Every request is verified first (signature on the raw body, age, replay) and
refused with 401 otherwise. Events and card actions are handed to the workers
on the ``slack`` queue and acknowledged only once Redis has them; the workers
deduplicate Slack's retries by ``event_id``, and quarantine (dead-letter) an
event they cannot convert. A verified body that is not the documented shape
(not a JSON object, a payload that is not one) is refused with 400 — an
answer Slack does not retry — never a 500 it would retry. The slash command is answered
directly (an ephemeral message to the person who typed it), because its
answer is what they are waiting for.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs

import structlog
from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from config.desk import load_desk
from intake.slack import MAX_BODY_BYTES, SlackRequestVerifier, enqueue
from ops.runtime import Runtime
from storage import tickets
from storage.models import utcnow
from storage.tickets import TicketLine
from workers.outbound.cards import escape, organisation_card, queue_card_update
from workers.desk.knowledge import Knowledge
from workers.errors import Refused
from workers.desk.operations import Desk, set_status
from ops.errors import TooLarge

log = structlog.get_logger("helpdesk.web")
LISTED = 15
_NUMBER = re.compile(r"^\s*(?:([A-Za-z]+)-)?(\d+)\s*$")


async def _body(request: Request) -> bytes:
    """The raw body, read no further than MAX_BODY_BYTES."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def slack_routes(runtime: Runtime) -> list[BaseRoute]:
    settings = runtime.settings
    verifier = SlackRequestVerifier(settings.slack.signing_secret or "", runtime.broker.client, settings.redis_namespace)
    commands = SlashCommands(runtime.engine, Desk(load_desk(settings), settings.ticket_prefix), runtime)

    async def events(request: Request) -> Response:
        try:
            body = await _body(request)
        except TooLarge:
            return PlainTextResponse("request too large", status_code=413)
        refused = verifier.verify(body, {k.lower(): v for k, v in request.headers.items()})
        if refused is not None:
            log.warning("slack request refused", reason=refused, retry=request.headers.get("x-slack-retry-num"))
            return PlainTextResponse(refused, status_code=401)
        content_type = request.headers.get("content-type", "")
        try:
            if content_type.startswith("application/json"):
                document = json.loads(body)
                if not isinstance(document, dict):
                    return PlainTextResponse("malformed body", status_code=400)
                return _event_callback(document)
            form = {k: v[0] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()}
        except (ValueError, UnicodeDecodeError):
            return PlainTextResponse("malformed body", status_code=400)
        if "payload" in form:
            try:
                payload = json.loads(form["payload"])
            except ValueError:
                return PlainTextResponse("malformed payload", status_code=400)
            if not isinstance(payload, dict):
                return PlainTextResponse("malformed payload", status_code=400)
            enqueue(runtime.broker, "interactive", payload)
            return Response(status_code=200)
        if form.get("command"):
            return JSONResponse(commands.answer(form))
        return PlainTextResponse("unknown request", status_code=400)

    def _event_callback(payload: dict[str, Any]) -> Response:
        if payload.get("type") == "url_verification":
            return JSONResponse({"challenge": payload.get("challenge", "")})
        if payload.get("type") == "event_callback":
            if not isinstance(payload.get("event"), dict):
                return PlainTextResponse("malformed event", status_code=400)
            enqueue(runtime.broker, "event", payload)  # raises (→ 500, Slack retries) if Redis does not take it
        return Response(status_code=200)

    return [Route("/slack/events", events, methods=["POST"])]


class SlashCommands:
    """``/helpdesk mine``, ``/helpdesk queue``, ``/helpdesk resolve HD-123``."""

    def __init__(self, engine: Engine, desk: Desk, runtime: Runtime) -> None:
        self.engine = engine
        self.desk = desk
        self.runtime = runtime
        self.staff = {m.slack_user: m.key for t in desk.config.teams.teams.values() for m in t.members if m.slack_user}

    def answer(self, form: dict[str, str]) -> dict[str, Any]:
        words = form.get("text", "").split()
        verb, rest = (words[0].lower(), " ".join(words[1:])) if words else ("help", "")
        member = self.staff.get(form.get("user_id", ""))
        if member is None:
            return _ephemeral("Only members of the desk's teams can use /helpdesk (ask an admin to add your Slack id to `teams.yaml`).")
        if verb == "mine":
            return self._mine(member)
        if verb == "queue":
            return self._queue(member)
        if verb == "resolve" and rest:
            return self._resolve(member, rest, form)
        if verb == "org" and rest:
            return self._organisation(rest)
        return _ephemeral("Usage: `/helpdesk mine` (your open tickets) · `/helpdesk queue` (your teams' unassigned tickets) · "
                          f"`/helpdesk resolve {self.desk.prefix}-123` · `/helpdesk org DOMAIN` (an organisation's stage, tickets, engagements)")

    def _organisation(self, domain: str) -> dict[str, Any]:
        """The organisation's card: where its implementation stands, its open tickets, the desk's engagements."""
        knowledge = Knowledge(self.engine, self.desk.config, surface="slack")
        try:
            detail = knowledge.organisation(domain.strip().split()[0])
        except Refused as exc:
            return _ephemeral(escape(str(exc)))
        text, blocks = organisation_card(detail, knowledge.suggestions(detail), self.desk.prefix)
        return {"response_type": "ephemeral", "text": escape(text), "blocks": blocks}

    def _teams_of(self, member: str) -> list[str]:
        return [key for key, team in self.desk.config.teams.teams.items() if any(m.key == member for m in team.members)]

    def _mine(self, member: str) -> dict[str, Any]:
        listing = tickets.open_listing(self.engine, assignee=member, limit=LISTED)
        return self._listing(listing, "Your open tickets", "Nothing assigned to you is open. 🎉")

    def _queue(self, member: str) -> dict[str, Any]:
        teams = self._teams_of(member)
        listing = tickets.open_listing(self.engine, unassigned_in=teams, limit=LISTED)
        return self._listing(listing, f"Unassigned in {', '.join(teams)}", "No unassigned tickets in your teams.")

    def _listing(self, listing: tickets.Listing, title: str, empty: str) -> dict[str, Any]:
        rows, total = listing.lines, listing.total
        if not rows:
            return _ephemeral(empty)
        lines = [self._line(row) for row in rows]
        more = f"\n…and {total - len(rows)} more" if total > len(rows) else ""
        text = f"*{title}* ({total})\n" + "\n".join(lines) + more
        return {"response_type": "ephemeral", "text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}]}

    def _line(self, row: TicketLine) -> str:
        subject = escape(row.subject[:80]) or "(no subject)"
        number = f"{self.desk.prefix}-{row.id}"
        due = ""
        if row.first_response_at is None and row.first_response_due_at is not None:
            overdue = row.first_response_due_at < utcnow()
            due = f" · {'⚠ overdue since' if overdue else 'reply due'} {row.first_response_due_at:%Y-%m-%d %H:%M} UTC"
        return f"• *{number}* {subject} · {row.type} · {row.status}{due}"

    def _resolve(self, member: str, reference: str, form: dict[str, str]) -> dict[str, Any]:
        match = _NUMBER.match(reference)
        if match is None or (match.group(1) and match.group(1).upper() != self.desk.prefix.upper()):
            return _ephemeral(f"`{reference[:40]}` is not a ticket number like {self.desk.prefix}-123.")
        ticket_id = int(match.group(2))
        number = f"{self.desk.prefix}-{ticket_id}"
        now = utcnow()
        key = f"resolve:slash:{form.get('user_id', '')}:{form.get('trigger_id') or now.isoformat()}"
        status = tickets.status(self.engine, ticket_id)
        if status is None:
            return _ephemeral(f"There is no {number}.")
        if status == "resolved":
            return _ephemeral(f"{number} is already resolved.")
        set_status(self.engine, self.desk, ticket_id, "resolved", now, by=member, key=key)
        self._update_card(ticket_id, key)
        return _ephemeral(f"✅ {number} resolved.")

    def _update_card(self, ticket_id: int, key: str) -> None:
        from config.queues import enqueue_effect  # noqa: PLC0415 - the web process only enqueues

        effect = queue_card_update(self.engine, ticket_id, key)
        if effect:
            enqueue_effect(self.runtime.broker, effect)


def _ephemeral(text: str) -> dict[str, Any]:
    return {"response_type": "ephemeral", "text": text}
