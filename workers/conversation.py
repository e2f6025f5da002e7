"""Threading: which existing ticket, if any, a message continues — and by which rule.

Rules, strongest first:

1. ``references`` — In-Reply-To or References names a message stored on a ticket
   (someone answering in the thread was part of it);
2. ``thread_key`` — the channel's own thread (a Slack thread, an X conversation);
3. ``subject_token`` — the subject carries ``[HD-123]`` and the sender took part
   in that ticket (or writes from the same organisation's domain). A token from
   a stranger is ignored: guessing a number must not let anyone into someone
   else's conversation.
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
    def __init__(self, ticket_prefix: str, free_mail_domains: frozenset[str]) -> None:
        self.token = re.compile(rf"[\[(#]{re.escape(ticket_prefix)}-(\d{{1,12}})[\])]?", re.IGNORECASE)
        self.prefix = ticket_prefix
        self.free_mail = free_mail_domains

    def link(self, message: InboundMessage, lookup: ThreadLookup) -> ThreadLink:
        found = (
            self._by_references(message, lookup)
            or self._by_thread_key(message, lookup)
            or self._by_subject_token(message, lookup)
        )
        return found or ThreadLink(None, "new", "no stored message referenced, no thread key or subject token matched")

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
        if match is None:
            return None
        ticket_id = int(match.group(1))
        if not lookup.ticket_exists(ticket_id):
            return None
        participants = lookup.ticket_participants(ticket_id)
        sender = message.sender.address
        if not participants:
            return None
        if sender in participants:
            return ThreadLink(ticket_id, "subject_token", f"subject token {self.prefix}-{ticket_id}; sender took part in it")
        domain = message.sender.domain
        if domain and domain not in self.free_mail and any(p.endswith("@" + domain) for p in participants):
            return ThreadLink(ticket_id, "subject_token", f"subject token {self.prefix}-{ticket_id}; sender's organisation ({domain}) took part")
        return ThreadLink(None, "new", f"subject token {self.prefix}-{ticket_id} ignored: {sender} never took part in it")
