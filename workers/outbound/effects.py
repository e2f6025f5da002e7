"""Carrying out outbox rows: one handler per kind, each idempotent.

Errors, by kind: ``RetryLater`` (a rate limit) → the row goes back to pending
and the caller retries after the far side's delay; ``SlackUnavailable``
(network, 5xx) → back to pending, retried with backoff, and the retry checks
whether the post went out before; ``EffectRefused`` → the row fails, with the
error visible.

Replies are sent exactly once: the message is marked ``sending`` before it
leaves. A retry that finds it so asks the channel whether it went out (Slack
and X can be searched for the reply's key); where the channel cannot tell (SMTP)
the reply is marked failed as *unconfirmed* for staff to check — never sent twice.
Without a Slack token Slack rows complete as skipped (the embedded demo).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, Engine

from classifiers.automated import base_address
from storage import acknowledgements, contacts, events, messages, outbox, tickets
from storage.db import is_unavailable, one_writer
from storage.models import utcnow
from storage.outbox import OutboxItem
from workers.outbound import cards
from workers.desk.operations import Desk, add_staff_message, assign_in, record_first_response
from workers.errors import EffectRefused, GroupFailed, NotSent, SlackRefused
from workers.desk.replies import template_values
from workers.outbound.slack import SlackPoster

Outcome = Literal["done", "skipped", "held", "already", "failed"]


@dataclass(frozen=True)
class EffectResult:
    """What carrying out one outbox row did.

    ``outcome``: done; skipped (nothing to do here: no Slack configured, no team channel…); held (waits
    for a channel that cannot send yet); already (done before); failed (refused for good, ``detail`` says
    why). ``facts`` are what the channel answered (a post's channel and ts, a mail's Message-ID), kept on
    the outbox row for staff; ``effects`` are outbox keys the handler created, for the caller to enqueue.
    """

    outcome: Outcome = "done"
    detail: str = ""
    facts: dict[str, Any] = field(default_factory=dict)
    effects: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """As stored on the outbox row: the facts, the outcome's reason under its name, the follow-ups."""
        data = dict(self.facts)
        if self.outcome != "done":
            data[self.outcome] = self.detail
        if self.effects:
            data["effects"] = list(self.effects)
        return data


def _skipped(reason: str) -> EffectResult:
    return EffectResult("skipped", reason)


def _no_slack(_c: Connection, _item: OutboxItem) -> EffectResult:
    return _skipped("Slack is not configured")


_AUTH_FAIL = re.compile(r"\b(dmarc|spf)\s*=\s*(fail|softfail|permerror)\b", re.IGNORECASE)


@dataclass(frozen=True)
class AcknowledgementPolicy:
    """When the desk says "we have your enquiry": never to a forged or own address, and never as a mail cannon.

    An acknowledgement goes out only if, in the hour before, fewer than ``per_address_hour`` went to the
    same mailbox (plus-addresses count as one: ``victim+1@`` … ``victim+30@``), fewer than ``per_domain_hour``
    to its domain and fewer than ``global_hour`` in all — and the receiving server did not report an SPF or
    DMARC failure for the sender. A contact gets at most one per ``window``.
    """

    window: timedelta = timedelta(hours=24)
    per_address_hour: int = 2
    per_domain_hour: int = 20
    global_hour: int = 200
    own_addresses: frozenset[str] = frozenset()


def authentication_failure(signals: dict[str, str] | None) -> str | None:
    """The SPF or DMARC failure the receiving server reported (its Authentication-Results), if any."""
    found = _AUTH_FAIL.search((signals or {}).get("authentication-results", ""))
    return f"{found.group(1).lower()}={found.group(2).lower()}" if found else None


class Effects:
    def __init__(self, engine: Engine, desk: Desk, poster: SlackPoster | None, clock: Callable[[], datetime] = utcnow,
                 lease: timedelta = outbox.LEASE, *, acknowledge: bool = False, acknowledgement_window: timedelta = timedelta(hours=24),
                 acknowledgement_policy: AcknowledgementPolicy | None = None) -> None:
        self.engine = engine
        self.lease = lease
        self.desk = desk
        self.poster = poster
        self.clock = clock
        self.one_writer = one_writer(engine)  # writers take turns: rows done together share one turn (run_together)
        self.acknowledge = acknowledge
        self.policy = acknowledgement_policy or AcknowledgementPolicy(window=acknowledgement_window)
        self.acknowledgement_window = self.policy.window
        # Effects on the database alone run in the transaction that claims their row and completes it.
        self.in_transaction: dict[str, Callable[[Connection, OutboxItem], EffectResult]] = {"assign": self._assign}
        if poster is None:  # without Slack its posts are only marked skipped: in the claim's transaction, not two more
            self.in_transaction |= dict.fromkeys(("slack_post", "slack_card", "slack_update"), _no_slack)
        self.handlers: dict[str, Callable[[OutboxItem], EffectResult]] = {
            "acknowledge": self._acknowledge,
            "slack_post": self._slack_post,
            "slack_card": self._slack_card,
            "slack_update": self._slack_update,
            "send_reply": self._send_reply,
        }
        # Reply senders per channel of the ticket (e-mail and X register theirs); each returns what the channel
        # answered (the sent message's id there), kept as the result's facts.
        # A sender that finds its own earlier sends on a retry says so with ``detects_earlier_sends = True``.
        self.senders: dict[str, Callable[[Any, Any, OutboxItem], dict[str, Any]]] = {"slack": self._send_slack_reply}

    def run(self, key: str) -> EffectResult | None:
        """Carry out one row; None when it is not (or no longer) ours to do. Raises for the caller to retry.

        A result's ``effects`` are outbox keys the handler created: the caller carries them out next. A row done
        before comes back ``already``, with the keys it created, when it created any.
        """
        item, done_here = None, False
        try:
            with self.engine.begin() as c:
                item = outbox.claim_in(c, key, self.clock(), self.lease)
                if item is None:
                    return self._done_before(c, key)
                local = self.in_transaction.get(item.kind)
                if local is not None:
                    # work on the database alone: claimed, done and completed in one transaction (a failure undoes all three)
                    done_here = True
                    result = local(c, item)  # type: ignore[arg-type]
                    outbox.complete_in(c, key, result.to_json())
                    return result
        except EffectRefused as exc:
            outbox.release(self.engine, key, str(exc), final=True)
            return EffectResult("failed", str(exc))
        except Exception as exc:
            if done_here:
                outbox.release(self.engine, key, f"{type(exc).__name__}: {exc}")
            raise
        assert item is not None  # claimed above
        handler = self.handlers.get(item.kind)
        if handler is None:
            outbox.release(self.engine, key, f"no handler for kind {item.kind!r}", final=True)
            return None
        try:
            result = handler(item)
        except EffectRefused as exc:
            outbox.release(self.engine, key, str(exc), final=True)
            return EffectResult("failed", str(exc))
        except Exception as exc:
            outbox.release(self.engine, key, f"{type(exc).__name__}: {exc}")
            raise
        outbox.complete(self.engine, key, result.to_json())
        return result

    def run_together(self, keys: Sequence[str]) -> list[EffectResult | None]:
        """Carry out the leading ``keys`` whose rows are work on the database alone in one transaction (claimed, done and
        completed), with one writer at a time (SQLite): one commit, and one turn at the writer's lock, instead of one each.

        Returns their results in order, as ``run`` would have; none when the first key's row is of another kind (the
        caller runs it with ``run``), fewer than ``keys`` when such a row comes later. When one of them fails, the
        transaction is undone with it — the row's error recorded as ``run`` records it — and ``GroupFailed`` says which
        (the keys before it are to be carried out again, the failed one as ``run``'s caller handles a failure).
        """
        results: list[EffectResult | None] = []
        index = 0
        try:
            with self.engine.begin() as c:
                kinds = outbox.kinds_in(c, keys)
                for index, key in enumerate(keys):
                    local = self.in_transaction.get(kinds.get(key, ""))
                    if local is None and key in kinds:
                        break  # work outside the database: ``run`` claims it, commits, then carries it out
                    item = outbox.claim_in(c, key, self.clock(), self.lease)
                    if item is None or local is None:  # done before, leased to another worker, or unknown: as ``run`` would say
                        results.append(self._done_before(c, key))
                        continue
                    result = local(c, item)
                    outbox.complete_in(c, key, result.to_json())
                    results.append(result)
        except Exception as exc:
            key = keys[index]
            if isinstance(exc, EffectRefused):
                outbox.release(self.engine, key, str(exc), final=True)
            elif not is_unavailable(exc):
                outbox.release(self.engine, key, f"{type(exc).__name__}: {exc}")
            raise GroupFailed(index, exc) from exc
        return results

    @staticmethod
    def _done_before(c: Connection, key: str) -> EffectResult | None:
        """A row not ours to claim. Done before (this is a delivery again): what it started goes on, each part skipped
        if done; else (leased to another worker, or no such row) nothing."""
        follow_ups = outbox.follow_ups_in(c, key)
        return EffectResult("already", effects=follow_ups) if follow_ups else None

    # -- handlers ---------------------------------------------------------------------
    def _assign(self, c: Connection, item: OutboxItem) -> EffectResult:
        ticket = tickets.get(c, item.ticket_id, lock=True)  # type: ignore[arg-type]
        acknowledgement: tuple[str, ...] = ()
        # An acknowledgement only where the ticket's channel can send one (without a sender it would only be skipped);
        # recorded before the assignment takes its team's round-robin row, which stays locked until the commit.
        if self.acknowledge and ticket is not None and ticket.channel in self.senders:
            if outbox.add(c, f"ack:{item.ticket_id}", "acknowledge", item.ticket_id, {}, self.clock()):
                acknowledgement = (f"ack:{item.ticket_id}",)
        result = assign_in(c, self.desk, item.ticket_id, self.clock(), ticket=ticket)  # type: ignore[arg-type]
        effects = (*result.effects, *acknowledgement)
        facts = {"outcome": result.outcome, "member": result.member, "reasons": list(result.reasons)}
        return EffectResult("done", facts=facts, effects=effects)

    def _acknowledge(self, item: OutboxItem) -> EffectResult:
        """Tell a new enquirer we have their enquiry — once per contact per window, in their language, on their channel."""
        now = self.clock()
        with self.engine.begin() as c:
            ticket = tickets.get(c, item.ticket_id)  # type: ignore[arg-type]
            if ticket is None or ticket.channel not in self.senders:
                return _skipped("no sender for this channel")
            templates = self.desk.config.templates
            texts = templates.acknowledgements.get(ticket.channel)
            if texts is None or ticket.contact_id is None:
                return _skipped("no acknowledgement for this channel")
            # One decision per contact at a time: the check and the record share this transaction and the contact's lock.
            who = contacts.display_name(c, ticket.contact_id, lock=True) or ""
            recent = acknowledgements.recent_for_contact(c, ticket.contact_id, ticket.id, now - self.acknowledgement_window)
            if recent is not None:
                return _skipped(f"acknowledged {self.desk.prefix}-{recent} within the window")
            refusal = self._policy_refusal(c, ticket, now)
            if refusal is not None:
                events.record(c, f"ack-withheld:{ticket.id}", "acknowledgement_withheld", ticket.id, now, {"reason": refusal})
                return _skipped(refusal)
            events.record(c, f"acknowledged:{ticket.id}", "acknowledged", ticket.id, now, {"contact": ticket.contact_id})
        values = template_values(self.desk, ticket, enquirer=who)
        body = templates.render(templates.pick(texts.body, ticket.language) or "", values)
        subject = templates.render(templates.pick(texts.subject, ticket.language) or "", values).strip() if texts.subject else ""
        recorded = add_staff_message(self.engine, ticket.id, body, now, author="helpdesk", key=f"ack:{ticket.id}",
                                     note=False, kind="acknowledgement", subject=subject)
        return EffectResult("done", facts={"message": recorded.message_id}, effects=(recorded.effect,) if recorded.effect else ())

    def _policy_refusal(self, c: Any, ticket: Any, now: datetime) -> str | None:
        """Why no acknowledgement may go to this ticket's enquirer now (None: it may); records it when it may."""
        opening = acknowledgements.opening_message(c, ticket.id)
        address = base_address(opening.sender_address if opening is not None else "")
        failure = authentication_failure(opening.signals if opening is not None else None)
        if failure is not None:
            return f"the sender failed authentication ({failure}): it may be forged"
        if address in {base_address(a) for a in self.policy.own_addresses}:
            return "the sender is one of our own addresses"
        domain = address.rpartition("@")[2] if "@" in address else None
        counts = acknowledgements.recent(c, address, domain, now - timedelta(hours=1))
        policy = self.policy
        for count, limit, scope in ((counts.to_address, policy.per_address_hour, f"to {address}"),
                                    (counts.to_domain, policy.per_domain_hour, f"to {domain}"),
                                    (counts.in_total, policy.global_hour, "in all")):
            if count >= limit:
                return f"{count} acknowledgement(s) {scope} in the last hour (limit {limit})"
        acknowledgements.record(c, ticket.id, address, domain, now)
        return None

    def _slack_post(self, item: OutboxItem) -> EffectResult:
        if self.poster is None:
            return _skipped("Slack is not configured")
        payload = item.payload
        posted = self.poster.post(item.key, payload["channel"], payload["text"], payload.get("blocks"),
                                  thread_ts=payload.get("thread_ts"), check_first=item.attempts > 1, since=item.created_at.timestamp())
        return EffectResult("done", facts={"channel": posted.channel, "ts": posted.ts, "found_existing": posted.found_existing})

    def _slack_card(self, item: OutboxItem) -> EffectResult:
        if self.poster is None:
            return _skipped("Slack is not configured")
        loaded = cards.load(self.engine, item.ticket_id)  # type: ignore[arg-type]
        ticket, enquirer = loaded if loaded is not None else (None, None)
        team = self.desk.team(ticket.team) if ticket is not None else None
        if ticket is None or team is None or not team.slack_channel:
            return _skipped("no team channel")
        text, blocks = cards.card(ticket, self.desk, enquirer)
        posted = self.poster.post(item.key, team.slack_channel, text, blocks, check_first=item.attempts > 1,
                                  since=item.created_at.timestamp())
        # the newest card is the one whose thread answers the enquirer
        tickets.set_card(self.engine, ticket.id, item.payload.get("assignment", 0), posted.channel, posted.ts)  # type: ignore[arg-type]
        return EffectResult("done", facts={"channel": posted.channel, "ts": posted.ts, "found_existing": posted.found_existing})

    def _slack_update(self, item: OutboxItem) -> EffectResult:
        """Show the ticket as it is now on its card (the same update twice leaves the same card)."""
        if self.poster is None:
            return _skipped("Slack is not configured")
        shown = None
        for _ in range(3):  # two updates racing may land out of order: the last one re-reads until the card is current
            loaded = cards.load(self.engine, item.ticket_id)  # type: ignore[arg-type]
            if loaded is None or not loaded[0].card_ts:
                return _skipped("no card yet")
            ticket, enquirer = loaded
            current = cards.card(ticket, self.desk, enquirer)
            if current == shown:
                break
            self.poster.update(ticket.card_channel, ticket.card_ts, *current)
            shown = current
        return EffectResult("done", facts={"channel": ticket.card_channel, "ts": ticket.card_ts})

    def _send_reply(self, item: OutboxItem) -> EffectResult:
        """Send a staff reply on the enquirer's own channel, once; the first one is the ticket's first response."""
        message = messages.get(self.engine, item.payload["message"])
        ticket = tickets.find(self.engine, item.ticket_id) if message is not None else None  # type: ignore[arg-type]
        if message is None or ticket is None:
            return _skipped("message gone")
        if message.status in ("sent", "failed"):
            return EffectResult("already", message.status)
        sender = self.senders.get(ticket.channel)
        if sender is None:  # stays queued: sent once this channel can send (`helpdesk reply --send-queued`)
            return EffectResult("held", f"no sender for the {ticket.channel} channel yet")
        if message.status == "sending" and not getattr(sender, "detects_earlier_sends", False):
            error = ("unconfirmed: the worker stopped while sending, so it may have gone out; check with the enquirer, "
                     f"then `helpdesk reply --resend {message.id}` if it did not")
            self._set_message(message.id, status="failed", error=error)
            return EffectResult("failed", error)
        self._set_message(message.id, status="sending")
        try:
            facts = sender(message, ticket, item)
        except EffectRefused as exc:
            self._set_message(message.id, status="failed", error=str(exc)[:2000])
            raise
        except NotSent as exc:  # certainly not delivered: queued again, tried again (the error shows meanwhile)
            self._set_message(message.id, status="queued", error=str(exc)[:2000])
            raise
        now = self.clock()
        self._set_message(message.id, status="sent", sent_at=now, error=None)
        if message.kind == "reply":  # acknowledgements are not answers
            record_first_response(self.engine, self.desk, ticket.id, now, by=message.author or "staff", key=item.key)
        return EffectResult("done", facts=facts)

    def _send_slack_reply(self, message: Any, ticket: Any, item: OutboxItem) -> dict[str, Any]:
        if self.poster is None:
            raise SlackRefused("Slack is not configured")
        thread_key = messages.first_thread_key(self.engine, ticket.id)
        if not thread_key:
            raise SlackRefused("the enquiry's Slack thread is unknown")
        channel, thread_ts = thread_key.split(":", 1)
        posted = self.poster.post(item.key, channel, message.text, thread_ts=thread_ts, check_first=item.attempts > 1,
                                  since=item.created_at.timestamp())
        return {"channel": posted.channel, "ts": posted.ts, "found_existing": posted.found_existing}

    _send_slack_reply.detects_earlier_sends = True  # type: ignore[attr-defined]  # a retry asks Slack first (check_first)

    def _set_message(self, message_id: int, **values: Any) -> None:
        messages.change(self.engine, message_id, values)
