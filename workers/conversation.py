"""Threading: which existing ticket, if any, a message continues — and by which rule.

Rules, strongest first:

1. ``references`` — In-Reply-To or References names a message stored on a ticket
   (someone answering in the thread was part of it);
2. ``thread_key`` — the channel's own thread (a Slack thread, an X conversation);
3. ``reply_address`` — the message was sent to the ticket's own reply address
   (plus-addressing: ``helpdesk+HD-123@…``);
4. ``subject_token`` — the subject carries ``[HD-123]``.

A person joins a ticket only if they took part in it (wrote, or were written
to) or — unless the desk says ``never`` — write from the same organisation's
domain. A reference or token from a stranger starts a new ticket, with the
reason: guessing a number or forwarding a thread must not let anyone into
someone else's conversation. Automated mail (bounces, auto-replies) attaches to
whatever it names; it never opens or changes a conversation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from intake.message import InboundMessage


class ThreadLookup(Protocol):
    def tickets_by_message_ids(self, channel: str, ids: list[str]) -> dict[str, int]: ...
    def ticket_by_thread_key(self, channel: str, thread_key: str) -> int | None: ...
    def ticket_exists(self, ticket_id: int) -> bool: ...
    def ticket_participants(self, ticket_id: int) -> set[str]: ...


@dataclass(frozen=True)
class ThreadLink:
    """The decision: ``ticket_id`` None means the message starts a new conversation."""

    ticket_id: int | None
    rule: str
    reason: str


class Threader:
    def __init__(self, ticket_prefix: str, free_mail_domains: frozenset[str], *, strangers: str = "same_organisation") -> None:
        self.token = re.compile(rf"[\[(#]{re.escape(ticket_prefix)}-(\d{{1,12}})[\])]?", re.IGNORECASE)
        self.plus = re.compile(rf"\+{re.escape(ticket_prefix)}-(\d{{1,12}})@", re.IGNORECASE)
        self.prefix = ticket_prefix
        self.free_mail = free_mail_domains
        self.same_organisation = strangers == "same_organisation"

    def link(self, message: InboundMessage, lookup: ThreadLookup, *, automated: bool = False) -> ThreadLink:
        """Which ticket ``message`` continues; for automated mail, which ticket it concerns."""
        refused: list[str] = []
        for rule in (self._by_references, self._by_thread_key, self._by_reply_address, self._by_subject_token):
            found = rule(message, lookup)
            if found is None:
                continue
            if automated or found.rule == "thread_key":
                return found
            allowed = self._participant(message, lookup, found.ticket_id)  # type: ignore[arg-type]
            if allowed is not None:
                return ThreadLink(found.ticket_id, found.rule, f"{found.reason}; {allowed}")
            refused.append(f"{found.reason}, but {message.sender.address} never took part in it")
        if refused:
            return ThreadLink(None, "new", "; ".join(refused))
        return ThreadLink(None, "new", "no stored message referenced, no thread key, reply address or subject token matched")

    def _participant(self, message: InboundMessage, lookup: ThreadLookup, ticket_id: int) -> str | None:
        """Why the sender may join ``ticket_id``, or None if they may not."""
        participants = lookup.ticket_participants(ticket_id)
        sender = message.sender.address
        if sender in participants:
            return "the sender took part in it"
        domain = message.sender.domain
        if self.same_organisation and domain and domain not in self.free_mail and any(p.endswith("@" + domain) for p in participants):
            return f"the sender's organisation ({domain}) took part in it"
        return None

    def _by_references(self, message: InboundMessage, lookup: ThreadLookup) -> ThreadLink | None:
        refs = list(message.thread.referenced_ids())
        if not refs:
            return None
        found = lookup.tickets_by_message_ids(message.channel, refs)
        for ref in refs:  # nearest reference first
            if ref in found:
                header = "In-Reply-To" if ref in message.thread.in_reply_to else "References"
                return ThreadLink(found[ref], "references", f"{header} names <{ref}> on {self.prefix}-{found[ref]}")
        return None

    def _by_reply_address(self, message: InboundMessage, lookup: ThreadLookup) -> ThreadLink | None:
        for recipient in message.recipients:
            match = self.plus.search(recipient.address)
            if match is not None and lookup.ticket_exists(int(match.group(1))):
                ticket_id = int(match.group(1))
                return ThreadLink(ticket_id, "reply_address", f"sent to the reply address of {self.prefix}-{ticket_id}")
        return None

    def _by_thread_key(self, message: InboundMessage, lookup: ThreadLookup) -> ThreadLink | None:
        key = message.thread.thread_key
        if not key:
            return None
        ticket_id = lookup.ticket_by_thread_key(message.channel, key)
        if ticket_id is None:
            return None
        return ThreadLink(ticket_id, "thread_key", f"{message.channel} thread {key} belongs to {self.prefix}-{ticket_id}")

    def _by_subject_token(self, message: InboundMessage, lookup: ThreadLookup) -> ThreadLink | None:
        match = self.token.search(message.subject)
        if match is None or not lookup.ticket_exists(int(match.group(1))):
            return None
        ticket_id = int(match.group(1))
        return ThreadLink(ticket_id, "subject_token", f"subject token {self.prefix}-{ticket_id}")
