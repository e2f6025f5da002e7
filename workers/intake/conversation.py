"""Threading: which existing ticket, if any, a message continues — and by which rule.

Rules, strongest first:

1. ``references`` — In-Reply-To or References names a message stored on a ticket
   (someone answering in the thread was part of it);
2. ``thread_key`` — the channel's own thread (a Slack thread, an X conversation);
3. ``reply_address`` — the message was sent to the ticket's own reply address
   (plus-addressing: ``helpdesk+HD-123@…``);
4. ``subject_token`` — the subject carries ``[HD-123]``.

A person joins a ticket by references or a token only if they took part in it
(wrote, or were written to), or — unless the desk says ``never`` — write from the
same organisation's domain *and* present the ticket's key. Our reply address and
subject token carry a short key, an HMAC of the ticket number under the desk's
secret (``helpdesk+hd-123-k7f3qa@…``, ``[HD-123-k7f3qa]``): someone who guesses a
sequential number has no key, so a reference or token from a stranger starts a
new ticket, with the reason. Automated mail (bounces, auto-replies) attaches to
whatever it names; it never opens or changes a conversation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
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
    keyed: bool = False  # the message presented the ticket's key (reply address or subject token)


class TicketKeys:
    """Short keys of ticket numbers under the desk's secret: unguessable, checkable, stable."""

    LENGTH = 6

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the ticket-key secret must be at least 16 bytes")
        self.secret = secret

    def key(self, ticket_id: int) -> str:
        digest = hmac.new(self.secret, f"ticket:{ticket_id}".encode(), hashlib.sha256).digest()
        return base64.b32encode(digest).decode("ascii").lower()[: self.LENGTH]

    def token(self, prefix: str, ticket_id: int) -> str:
        """``HD-123-k7f3qa``: the ticket number with its key, for subjects and reply addresses."""
        return f"{prefix}-{ticket_id}-{self.key(ticket_id)}"

    def valid(self, ticket_id: int, key: str | None) -> bool:
        return bool(key) and hmac.compare_digest(self.key(ticket_id), key.lower())  # type: ignore[union-attr]


class Threader:
    def __init__(self, ticket_prefix: str, free_mail_domains: frozenset[str], *, strangers: str = "same_organisation",
                 keys: TicketKeys | None = None) -> None:
        self.token = re.compile(rf"[\[(#]{re.escape(ticket_prefix)}-(\d{{1,12}})(?:-([a-z2-7]{{4,12}}))?[\])]?", re.IGNORECASE)
        self.plus = re.compile(rf"\+{re.escape(ticket_prefix)}-(\d{{1,12}})(?:-([a-z2-7]{{4,12}}))?@", re.IGNORECASE)
        self.prefix = ticket_prefix
        self.free_mail = free_mail_domains
        self.same_organisation = strangers == "same_organisation"
        self.keys = keys

    def link(self, message: InboundMessage, lookup: ThreadLookup, *, automated: bool = False) -> ThreadLink:
        """Which ticket ``message`` continues; for automated mail, which ticket it concerns."""
        refused: list[str] = []
        for rule in (self._by_references, self._by_thread_key, self._by_reply_address, self._by_subject_token):
            found = rule(message, lookup)
            if found is None:
                continue
            if automated or found.rule == "thread_key":
                return found
            allowed = self._participant(message, lookup, found.ticket_id, keyed=found.keyed)  # type: ignore[arg-type]
            if allowed is not None:
                return ThreadLink(found.ticket_id, found.rule, f"{found.reason}; {allowed}")
            refused.append(f"{found.reason}, but {message.sender.address} never took part in it"
                           + ("" if found.keyed else " and gave no valid ticket key"))
        if refused:
            return ThreadLink(None, "new", "; ".join(refused))
        return ThreadLink(None, "new", "no stored message referenced, no thread key, reply address or subject token matched")

    def _participant(self, message: InboundMessage, lookup: ThreadLookup, ticket_id: int, *, keyed: bool = False) -> str | None:
        """Why the sender may join ``ticket_id``, or None if they may not.

        A colleague of a participant joins only with the ticket's key (from a mail of ours they were given),
        never by a number alone; without keys configured (tests of the rules alone) the organisation suffices.
        """
        participants = lookup.ticket_participants(ticket_id)
        sender = message.sender.address
        if sender in participants:
            return "the sender took part in it"
        domain = message.sender.domain
        colleague = domain and domain not in self.free_mail and any(p.endswith("@" + domain) for p in participants)
        if self.same_organisation and colleague and (keyed or self.keys is None):
            return f"the sender's organisation ({domain}) took part in it" + (" and the ticket key matches" if keyed else "")
        return None

    def _keyed(self, ticket_id: int, key: str | None) -> bool:
        return self.keys is not None and self.keys.valid(ticket_id, key)

    def _by_references(self, message: InboundMessage, lookup: ThreadLookup) -> ThreadLink | None:
        refs = list(message.thread.referenced_ids())
        if not refs:
            return None
        found = lookup.tickets_by_message_ids(message.channel, refs)
        for ref in refs:  # nearest reference first
            if ref in found:
                header = "In-Reply-To" if ref in message.thread.in_reply_to else "References"
                # A Message-ID is known only from the mail itself: as good as the key (unlike a sequential number)
                return ThreadLink(found[ref], "references", f"{header} names <{ref}> on {self.prefix}-{found[ref]}", keyed=True)
        return None

    def _by_reply_address(self, message: InboundMessage, lookup: ThreadLookup) -> ThreadLink | None:
        for recipient in message.recipients:
            match = self.plus.search(recipient.address)
            if match is not None and lookup.ticket_exists(int(match.group(1))):
                ticket_id = int(match.group(1))
                return ThreadLink(ticket_id, "reply_address", f"sent to the reply address of {self.prefix}-{ticket_id}",
                                  keyed=self._keyed(ticket_id, match.group(2)))
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
        return ThreadLink(ticket_id, "subject_token", f"subject token {self.prefix}-{ticket_id}", keyed=self._keyed(ticket_id, match.group(2)))
