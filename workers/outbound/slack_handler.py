"""What the worker does with what Slack sends: events (messages, edits, deletions) and actions on cards.

Each event is done once: its ``event_id`` (an action's user and ``action_ts``)
is recorded in ``slack_event`` under a unique key, so Slack's retries — which
it sends when our 200 came late — change nothing. Messages in intake channels
and DMs to the bot become InboundMessages on the intake queue; a staff
member's message in a card's thread becomes a reply to the enquirer (or an
internal note when it starts with ``note:``); a staff member answering in the
enquirer's own Slack thread is recorded as a reply already sent.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Engine

from config.settings import Settings
from intake.base import Sink
from intake.slack_payload import is_message_from_a_person, message_to_inbound, plain_text
from storage import messages, slack_events, tickets
from storage.models import utcnow
from workers.outbound.cards import queue_card_update
from workers.desk.operations import Desk, add_staff_message, record_first_response
from workers.desk.permissions import Staff
from workers.errors import Forbidden
from workers.outbound.slack import SlackPoster
from workers.desk.ticket_actions import Outcome, TicketActions


@dataclass(frozen=True)
class Handled:
    outcome: str
    effects: tuple[str, ...] = ()


class SlackHandler:
    def __init__(self, engine: Engine, desk: Desk, settings: Settings, poster: SlackPoster | None, sink: Sink) -> None:
        self.engine = engine
        self.desk = desk
        self.poster = poster
        self.sink = sink
        self.intake_channels = set(settings.slack_intake_channels)
        self._bot_user_id = settings.slack_bot_user_id
        self.staff = {m.slack_user: m.key for t in desk.config.teams.teams.values() for m in t.members if m.slack_user}
        self.people = Staff(desk.config)
        self.actions = TicketActions(engine, desk, surface="slack", people=self.people)

    @property
    def bot_user_id(self) -> str | None:
        if self._bot_user_id is None and self.poster is not None:
            self._bot_user_id = self.poster.client.auth_test().get("user_id")
        return self._bot_user_id

    def handle(self, kind: str, payload: dict[str, Any]) -> Handled:
        if kind == "event":
            event = payload.get("event") or {}
            key = payload.get("event_id") or f"{event.get('channel')}:{event.get('event_ts') or event.get('ts')}"
            if not self._first_time(key, event.get("type", "event")):
                return Handled("duplicate")
            try:
                return self._event(event, key)
            except BaseException:
                self._forget(key)  # not done: a retry or a replay from the dead letters must find it new
                raise
        if kind == "interactive":
            user = (payload.get("user") or {}).get("id", "")
            stamps = [a.get("action_ts", "") for a in payload.get("actions", [])]
            if not self._first_time(f"action:{user}:{':'.join(stamps)}", payload.get("type", "interactive")):
                return Handled("duplicate")
            return self._actions(payload)
        return Handled("ignored")

    def _first_time(self, key: str, kind: str) -> bool:
        return slack_events.first_time(self.engine, key, kind, utcnow())

    def _forget(self, key: str) -> None:
        slack_events.forget(self.engine, key)

    # -- events -----------------------------------------------------------------------------
    def _event(self, event: dict[str, Any], event_id: str) -> Handled:
        if event.get("type") != "message":
            return Handled("ignored")
        subtype = event.get("subtype")
        if subtype == "message_changed":
            return self._edited(event)
        if subtype == "message_deleted":
            return self._deleted(event)
        if not is_message_from_a_person(event, self.bot_user_id):
            return Handled("ignored")  # bots, our own posts, joins
        channel, thread_ts = event.get("channel"), event.get("thread_ts")
        if thread_ts:
            card_ticket = self._ticket_of_card(channel, thread_ts)
            if card_ticket is not None:
                return self._staff_in_card_thread(card_ticket, event)
        is_intake = channel in self.intake_channels or event.get("channel_type") == "im"
        if not is_intake:
            return Handled("ignored")
        if event["user"] in self.staff and thread_ts:
            ticket_id = self._ticket_of_thread(channel, thread_ts)
            if ticket_id is not None:  # staff answering in the enquirer's own thread: already delivered
                return self._staff_answered_in_place(ticket_id, event)
        name, email = self._user(event["user"])
        self.sink.put(message_to_inbound(event, user_name=name, user_email=email, event_id=event_id))
        return Handled("queued")

    def _staff_in_card_thread(self, ticket_id: int, event: dict[str, Any]) -> Handled:
        member = self.staff.get(event["user"])
        if member is None:
            return Handled("ignored")  # someone not on the desk chatting under a card
        text = plain_text(event.get("text", "")).strip()
        note = text.lower().startswith("note:")
        body = text[5:].strip() if note else text
        now = utcnow()
        recorded = add_staff_message(self.engine, ticket_id, body, now, author=member, key=f"slack:{event['channel']}:{event['ts']}", note=note)
        return Handled("note" if note else "reply", (recorded.effect,) if recorded.effect else ())

    def _staff_answered_in_place(self, ticket_id: int, event: dict[str, Any]) -> Handled:
        member = self.staff[event["user"]]
        now = datetime.fromtimestamp(float(event["ts"]), timezone.utc)
        add_staff_message(self.engine, ticket_id, plain_text(event.get("text", "")), now, author=member,
                          key=f"slack:{event['channel']}:{event['ts']}", note=False, sent_as=("slack", f"{event['channel']}:{event['ts']}"))
        record_first_response(self.engine, self.desk, ticket_id, now, by=member, key=f"slack:{event['ts']}")
        return Handled("answered_in_place")

    def _edited(self, event: dict[str, Any]) -> Handled:
        changed = event.get("message") or {}
        external_id = f"{event.get('channel')}:{changed.get('ts')}"
        # The author changed their words: keep only what they say now (no copy of the text before).
        edited = messages.record_edit(self.engine, "slack", external_id, plain_text(changed.get("text", "")), utcnow(),
                                      key=f"edited:{external_id}:{event.get('event_ts')}")
        return Handled("ignored" if edited is None else "edited")

    def _deleted(self, event: dict[str, Any]) -> Handled:
        external_id = f"{event.get('channel')}:{event.get('deleted_ts')}"
        # The author took it back: its words go too; the message stays as a counted, empty fact of the ticket.
        deleted = messages.record_deletion(self.engine, "slack", external_id, utcnow(), key=f"deleted:{external_id}")
        return Handled("ignored" if deleted is None else "deleted")

    # -- actions on cards ------------------------------------------------------------------
    def _actions(self, payload: dict[str, Any]) -> Handled:
        user = (payload.get("user") or {}).get("id", "")
        person = self.people.by_slack_user(user)
        member = person.key if person is not None else None
        effects: list[str] = []
        for action in payload.get("actions", []):
            try:
                outcome = self._action(action, user, member)
            except Forbidden as exc:
                self._refused(payload, user, exc)
                continue
            if outcome is None or outcome.status in ("unknown_ticket", "invalid"):
                continue
            effects.extend(outcome.effects)
            effect = queue_card_update(self.engine, outcome.ticket_id, f"slack:{user}:{action.get('action_ts', '')}")
            if effect:
                effects.append(effect)
        return Handled("actions", tuple(effects))

    def _action(self, action: dict[str, Any], user: str, member: str | None) -> Outcome | None:
        """A card's button or menu as a desk action, done by ``TicketActions`` (which checks who may)."""
        action_id = action.get("action_id", "")
        raw = (action.get("selected_option") or {}).get("value") or action.get("value") or ""
        ticket_part, _, choice = raw.partition(":")
        if not ticket_part.isdigit():
            return None
        ticket_id = int(ticket_part)
        key = f"slack:{user}:{action.get('action_ts', '')}"
        if member is None:  # not a person of the desk: refused (and recorded) whatever the action
            name = {"reclassify_type": "reclassify", "reclassify_sector": "reclassify"}.get(action_id, action_id)
            self.actions.authorise(None, name, ticket_id, attempt=key, who=user)
        if action_id == "claim":
            return self.actions.claim(member, ticket_id, key=key)
        if action_id == "assign":
            return self.actions.assign(member, ticket_id, choice, key=key)
        if action_id in ("reclassify_type", "reclassify_sector"):
            return self.actions.reclassify(member, ticket_id, "type" if action_id == "reclassify_type" else "sector", choice, key=key)
        if action_id == "canned" and choice:
            return self.actions.canned(member, ticket_id, choice, key=key)
        if action_id in ("pending", "resolve", "reopen"):
            return getattr(self.actions, action_id)(member, ticket_id, key=key)
        return None

    def _refused(self, payload: dict[str, Any], user: str, exc: Forbidden) -> None:
        """Nothing changed (and the attempt is in the audit log): tell them why — only they see it."""
        channel = (payload.get("channel") or {}).get("id") or (payload.get("container") or {}).get("channel_id")
        if self.poster is None or not channel:
            return
        try:
            self.poster.client.chat_postEphemeral(channel=channel, user=user, text=f"Not done: {exc.reason}.")
        except Exception:  # noqa: BLE001 - the refusal stands (and is recorded) even if Slack cannot be told now
            pass

    # -- lookups ----------------------------------------------------------------------------
    def _ticket_of_card(self, channel: str | None, ts: str) -> int | None:
        return tickets.of_card(self.engine, channel, ts)

    def _ticket_of_thread(self, channel: str, thread_ts: str) -> int | None:
        return messages.ticket_of_thread(self.engine, "slack", f"{channel}:{thread_ts}")

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - one handler per worker process; profiles change rarely
    def _user(self, user_id: str) -> tuple[str, str | None]:
        if self.poster is None:
            return user_id, None
        try:
            profile = self.poster.user_info(user_id)
        except Exception:  # noqa: BLE001 - without a profile the enquiry still counts; the name is the id
            return user_id, None
        details = profile.get("profile") or {}
        return profile.get("real_name") or details.get("real_name") or profile.get("name") or user_id, details.get("email")
