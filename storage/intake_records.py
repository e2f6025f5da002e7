"""What the pipeline decided about one message, handed to storage whole: storage turns it into rows.

The pipeline (``workers.intake.pipeline``) decides; ``IntakeTx`` records the decision in one
transaction — the message, its contact and organisation, the ticket, the metric events and the
outbox entry — so the columns, the events' keys and their data are written in one place.

    Arrival          the message as intake normalized it, and the delivery that brought it
    Threading        which ticket it continues (or none) and by which rule
    Labels           type, sector and language with confidences, as the classifier explained them
    Route            the team and priority, and the rule that chose them
    Automated        a bounce or auto-reply: stored, never a contact, counted
    Reply            a message on an existing ticket
    NewTicket        an enquiry that opens a ticket
    Duplicate        another copy of a stored message, counted once per copy

These records are plain values; storage imports nothing from intake, classifiers or workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Arrival:
    """One inbound message as stored (``message`` table columns), with the delivery that brought it."""

    channel: str
    external_id: str
    delivery_id: str
    sender_address: str
    sender_name: str
    subject: str
    text: str
    new_text: str | None
    content_hash: str
    received_at: datetime
    sent_at: datetime | None = None
    report: str | None = None
    signals: dict[str, str] | None = None
    html: str | None = None
    message_id: str | None = None
    thread_key: str | None = None
    refs: list[str] | None = None
    raw_ref: str | None = None
    attachments: list[dict[str, Any]] | None = None
    recipients: list[dict[str, Any]] | None = None
    defects: list[str] | None = None
    truncated: bool = False
    source: str = ""
    identities: dict[str, str] = field(default_factory=dict)  # the sender's addresses on other channels

    def message_row(self, *, ticket_id: int | None, kind: str, thread: Threading, stored_at: datetime,
                    contact_id: int | None = None, language: str | None = None,
                    automated_kind: str | None = None, automated_reason: str | None = None) -> dict[str, Any]:
        return {
            "ticket_id": ticket_id,
            "channel": self.channel,
            "external_id": self.external_id,
            "direction": "in",
            "kind": kind,
            "contact_id": contact_id,
            "language": language,
            "thread_rule": thread.rule,
            "thread_reason": thread.reason,
            "sender_address": self.sender_address,
            "sender_name": self.sender_name,
            "subject": self.subject,
            "text": self.text,
            "new_text": self.new_text,
            "report": self.report,
            "signals": self.signals,
            "html": self.html,
            "message_id": self.message_id,
            "thread_key": self.thread_key,
            "refs": self.refs,
            "automated_kind": automated_kind,
            "automated_reason": automated_reason,
            "content_hash": self.content_hash,
            "raw_ref": self.raw_ref,
            "attachments": self.attachments,
            "recipients": self.recipients,
            "defects": self.defects,
            "truncated": self.truncated,
            "source": self.source,
            "delivery_id": self.delivery_id,
            "sent_at": self.sent_at,
            "received_at": self.received_at,
            "stored_at": stored_at,
        }


@dataclass(frozen=True)
class Threading:
    """The ticket a message continues (None: it continues none) and the rule that said so."""

    ticket_id: int | None
    rule: str
    reason: str


@dataclass(frozen=True)
class Labels:
    type: str
    type_confidence: float
    sector: str
    sector_confidence: float
    language: str
    language_confidence: float
    needs_triage: bool
    explained: dict[str, Any]  # the classification with its reasons, as shown to staff
    organisation: str | None = None  # the sender's organisation's domain, when the sector came from it
    organisation_name: str | None = None


@dataclass(frozen=True)
class Route:
    team: str
    priority: str
    rule: str
    explained: dict[str, Any]  # the decision with its reasons, as shown to staff


@dataclass(frozen=True)
class Automated:
    arrival: Arrival
    thread: Threading
    kind: str  # bounce, auto_reply, …
    reason: str


@dataclass(frozen=True)
class Reply:
    arrival: Arrival
    thread: Threading  # ticket_id is set
    language: str


@dataclass(frozen=True)
class NewTicket:
    arrival: Arrival
    thread: Threading
    labels: Labels
    route: Route
    opened_at: datetime  # when the enquiry was made (the sender's date when plausible)
    suggestions: list[dict[str, Any]] | None = None  # documentation pages suggested to staff
    docs_gap: bool | None = None  # True: the documentation has no good answer (counted for the docs team); None: not searched


@dataclass(frozen=True)
class Duplicate:
    """Another copy of a stored message: ``copy_key`` names the copy, so a copy read twice counts once."""

    copy_key: str
    channel: str
    ticket_id: int | None
    message_pk: int


@dataclass(frozen=True)
class Opened:
    """What ``IntakeTx.open_ticket`` wrote: the ticket, its first message and the outbox key of its assignment."""

    ticket_id: int
    message_pk: int
    assign_key: str
