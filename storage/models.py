"""The tables. Unique constraints, not hopes, make every effect happen once.

- ``message``: one row per (channel, external_id) — the dedupe key;
- ``contact_identity``: one contact per (channel, address);
- ``organisation``: one per registrable domain;
- ``metric_event``: append-only, one row per idempotency ``key``;
- ``quarantine``: one row per rejected input or dead letter ``key``.

Timestamps are stored in UTC; SQLite forgets the zone, so ``UTCDateTime``
puts it back on read.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, Text, TypeDecorator, UniqueConstraint
from sqlalchemy import text as sql_text
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: store aware UTC timestamps only")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _ts(nullable: bool = False, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


def _json() -> Any:
    return Field(default=None, sa_column=Column(JSON, nullable=True))


def _text() -> Any:
    return Field(default="", sa_column=Column(Text, nullable=False, server_default=""))


class Organisation(SQLModel, table=True):
    __tablename__ = "organisation"

    id: int | None = Field(default=None, primary_key=True)
    domain: str = Field(max_length=255, unique=True)
    name: str | None = Field(default=None, max_length=255)
    sector: str | None = Field(default=None, max_length=40)
    country: str | None = Field(default=None, max_length=2)  # ISO 3166-1 alpha-2, upper case
    added_by: str | None = Field(default=None, max_length=64)  # a staff member's key; empty: created by intake from a domain
    created_at: datetime = _ts()
    updated_at: datetime | None = _ts(nullable=True)


class OrganisationDomain(SQLModel, table=True):
    """Further domains of an organisation (its first one is ``organisation.domain``): mail from them counts for it."""

    __tablename__ = "organisation_domain"

    domain: str = Field(primary_key=True, max_length=255)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    created_at: datetime = _ts()


class Implementation(SQLModel, table=True):
    """An organisation's use of one standard, at a stage of the configured ladder."""

    __tablename__ = "implementation"
    __table_args__ = (UniqueConstraint("organisation_id", "standard", name="uq_implementation_org_standard"),)

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    standard: str = Field(max_length=40)
    stage: str = Field(max_length=40, index=True)
    stage_since: datetime = _ts()
    urls: list | None = _json()  # publication and data URLs
    notes: str = _text()
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class StageChange(SQLModel, table=True):
    """A move of an implementation from one stage to another: who, when (the funnel of management information)."""

    __tablename__ = "stage_change"
    __table_args__ = (Index("ix_stage_change_at", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    implementation_id: int = Field(foreign_key="implementation.id", index=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    standard: str = Field(max_length=40)
    from_stage: str | None = Field(default=None, max_length=40)
    to_stage: str = Field(max_length=40)
    by: str = Field(max_length=64)
    at: datetime = _ts()


class Engagement(SQLModel, table=True):
    """Work the desk does for an organisation (a scoping note, a mapping review, a training …), with its effort."""

    __tablename__ = "engagement"
    __table_args__ = (Index("ix_engagement_requested_at", "requested_at"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str | None = Field(default=None, max_length=255, unique=True)  # idempotency of "add" (a retried command or action)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    kind: str = Field(max_length=40)
    status: str = Field(default="requested", max_length=20)  # requested | in_progress | delivered | cancelled
    owner: str | None = Field(default=None, max_length=64)
    hours: float = Field(default=0.0, sa_column_kwargs={"server_default": "0"})
    link: str | None = Field(default=None, max_length=2000)
    note: str = _text()
    created_by: str = Field(max_length=64)
    requested_at: datetime = _ts()
    started_at: datetime | None = _ts(nullable=True)
    delivered_at: datetime | None = _ts(nullable=True)
    updated_at: datetime = _ts()


class EngagementTicket(SQLModel, table=True):
    """A ticket an engagement came from (``origin``) or produced (``produced``)."""

    __tablename__ = "engagement_ticket"

    engagement_id: int = Field(foreign_key="engagement.id", primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", primary_key=True, index=True)
    relation: str = Field(default="origin", max_length=10)


class Contact(SQLModel, table=True):
    __tablename__ = "contact"

    id: int | None = Field(default=None, primary_key=True)
    display_name: str = Field(default="", max_length=512)
    organisation_id: int | None = Field(default=None, foreign_key="organisation.id", index=True)
    created_at: datetime = _ts()


class ContactIdentity(SQLModel, table=True):
    """How a contact appears on one channel: an e-mail address, a Slack user id, an X handle."""

    __tablename__ = "contact_identity"
    __table_args__ = (UniqueConstraint("channel", "address", name="uq_contact_identity_channel_address"),)

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    channel: str = Field(max_length=20)
    address: str = Field(max_length=512)
    created_at: datetime = _ts()


# The columns migration 0006 covered in one wide index (ix_ticket_report, replaced in 0011 by the narrower ones below).
REPORT_COLUMNS = (
    "type", "sector", "channel", "language", "team", "status", "needs_triage", "assignee", "resolved_at", "contact_id",
    "organisation_id", "first_response_seconds", "first_response_business_seconds", "first_response_met",
    "resolution_seconds", "resolution_business_seconds", "resolution_met", "reopened_count",
)
# Management information reads a period's tickets through these (storage/report.py): on PostgreSQL and SQLite alike
# an index-only range scan of rows a third to a quarter as wide as the table's, one index per kind of section.
VOLUME_COLUMNS = ("type", "sector", "channel", "language", "team", "status", "needs_triage", "organisation_id", "contact_id")
MEASURE_COLUMNS = ("first_response_seconds", "first_response_business_seconds", "first_response_met",
                   "resolution_seconds", "resolution_business_seconds", "resolution_met", "reopened_count")


class Ticket(SQLModel, table=True):
    """One conversation with one enquirer. ``id`` is the human number (HD-<id>)."""

    __tablename__ = "ticket"
    __table_args__ = (
        Index("ix_ticket_team_status", "team", "status"),
        Index("ix_ticket_contact_created", "contact_id", "created_at"),
        Index("ix_ticket_volumes", "created_at", *VOLUME_COLUMNS),  # also serves what an index of created_at alone did
        Index("ix_ticket_times", "created_at", *MEASURE_COLUMNS),
        # The backlog at a moment: the tickets never resolved, and those resolved after it.
        Index("ix_ticket_unresolved", "created_at", "assignee",
              postgresql_where=sql_text("resolved_at IS NULL"), sqlite_where=sql_text("resolved_at IS NULL")),
        Index("ix_ticket_resolved", "resolved_at", "created_at", "assignee"),
    )

    id: int | None = Field(default=None, primary_key=True)
    status: str = Field(default="new", max_length=20, index=True)
    subject: str = Field(default="", max_length=2000)
    channel: str = Field(max_length=20)
    contact_id: int | None = Field(default=None, foreign_key="contact.id", index=True)
    organisation_id: int | None = Field(default=None, foreign_key="organisation.id", index=True)
    type: str = Field(max_length=40)
    type_confidence: float = 0.0
    sector: str = Field(max_length=40)
    sector_confidence: float = 0.0
    language: str = Field(max_length=8)
    language_confidence: float = 0.0
    needs_triage: bool = False
    classification: dict | None = _json()
    team: str = Field(max_length=64)
    assignee: str | None = Field(default=None, max_length=64)
    priority: str = Field(default="normal", max_length=16)
    routing_rule: str | None = Field(default=None, max_length=128)
    routing: dict | None = _json()
    tags: list | None = _json()
    assignment: dict | None = _json()  # who was chosen and why (or why the ticket waits in the backlog)
    assignment_count: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    suggestions: list | None = _json()  # documentation pages that may answer it: [{title, url, score}], best first
    docs_gap: bool | None = None  # no page matched well: a possible gap in the documentation
    card_channel: str | None = Field(default=None, max_length=32)  # the current Slack card: replies in its thread answer the enquirer
    card_ts: str | None = Field(default=None, max_length=32, index=True)
    assigned_at: datetime | None = _ts(nullable=True)
    sla_policy: str | None = Field(default=None, max_length=64)
    first_response_due_at: datetime | None = _ts(nullable=True)
    resolution_due_at: datetime | None = _ts(nullable=True)
    sla_paused_at: datetime | None = _ts(nullable=True)  # waiting on the enquirer since
    paused_business_seconds: float = Field(default=0.0, sa_column_kwargs={"server_default": "0"})
    # Measured once, when they happen (reports aggregate numbers; they never recompute calendars):
    first_response_seconds: float | None = None  # calendar time from opening to the first reply to the enquirer
    first_response_business_seconds: float | None = None
    first_response_met: bool | None = None  # within the SLA target
    resolution_seconds: float | None = None  # to the first resolution; reopened tickets are counted apart
    resolution_business_seconds: float | None = None  # minus time waiting on the enquirer
    resolution_met: bool | None = None
    reopened_count: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    first_response_at: datetime | None = _ts(nullable=True)
    resolved_at: datetime | None = _ts(nullable=True)


class Message(SQLModel, table=True):
    """A message in or out. Automated mail that belongs to no ticket keeps ``ticket_id`` empty."""

    __tablename__ = "message"
    __table_args__ = (
        UniqueConstraint("channel", "external_id", name="uq_message_channel_external_id"),
        Index("ix_message_channel_message_id", "channel", "message_id"),
        Index("ix_message_channel_thread_key", "channel", "thread_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id", index=True)
    channel: str = Field(max_length=20)
    external_id: str = Field(max_length=998)
    direction: str = Field(default="in", max_length=3)
    kind: str = Field(default="enquiry", max_length=20)
    contact_id: int | None = Field(default=None, foreign_key="contact.id")
    sender_address: str = Field(default="", max_length=512)
    sender_name: str = Field(default="", max_length=512)
    subject: str = Field(default="", max_length=2000)
    text: str = _text()
    new_text: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # the reply without quoted history
    html: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    report: dict | None = _json()  # a delivery/disposition report: action, status, recipient, original message id
    signals: dict | None = _json()  # the headers that reveal automated or unauthenticated mail (Auto-Submitted, Authentication-Results …)
    language: str | None = Field(default=None, max_length=8)
    message_id: str | None = Field(default=None, max_length=998)
    thread_key: str | None = Field(default=None, max_length=512)
    refs: list | None = _json()
    thread_rule: str | None = Field(default=None, max_length=40)
    thread_reason: str | None = Field(default=None, max_length=1000)
    automated_kind: str | None = Field(default=None, max_length=20)
    automated_reason: str | None = Field(default=None, max_length=500)
    content_hash: str = Field(max_length=64)
    raw_ref: str | None = Field(default=None, max_length=64)
    attachments: list | None = _json()
    recipients: list | None = _json()
    defects: list | None = _json()
    truncated: bool = False
    source: str = Field(default="", max_length=2000)
    delivery_id: str | None = Field(default=None, max_length=64)
    sent_at: datetime | None = _ts(nullable=True)
    received_at: datetime = _ts()
    stored_at: datetime = _ts()
    edited_at: datetime | None = _ts(nullable=True)
    deleted_at: datetime | None = _ts(nullable=True)
    author: str | None = Field(default=None, max_length=64)  # the staff member who wrote an outbound message or note
    status: str | None = Field(default=None, max_length=20)  # outbound: queued | sending | sent | failed
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class MetricEvent(SQLModel, table=True):
    """Append-only facts for management information; ``key`` makes each fact count once."""

    __tablename__ = "metric_event"
    __table_args__ = (Index("ix_metric_event_kind_at", "kind", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=255, unique=True)
    kind: str = Field(max_length=40)
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id", index=True)
    channel: str | None = Field(default=None, max_length=20)
    at: datetime = _ts()
    data: dict | None = _json()


class Quarantine(SQLModel, table=True):
    """Input that could not become a ticket, with the reason; visible to operators, replayable."""

    __tablename__ = "quarantine"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=255, unique=True)
    kind: str = Field(max_length=20)  # rejected (unparseable input) | dead_letter (failed in a worker)
    status: str = Field(default="open", max_length=20, sa_column_kwargs={"server_default": "open"})  # open | replayed | purged
    queue: str | None = Field(default=None, max_length=64)
    message_id: str | None = Field(default=None, max_length=64, index=True)  # the dramatiq message id of a dead letter
    replayed_at: datetime | None = _ts(nullable=True)
    channel: str | None = Field(default=None, max_length=20)
    reason: str = Field(max_length=100)
    detail: str = _text()
    source: str = Field(default="", max_length=2000)
    raw_ref: str | None = Field(default=None, max_length=64)
    payload: dict | None = _json()
    received_at: datetime | None = _ts(nullable=True)
    created_at: datetime = _ts()


class Correction(SQLModel, table=True):
    """A staff correction of a ticket's classification: training data, with who and when.

    ``key`` makes a correction count once however often the action is delivered
    (a Slack button press retried, a command run twice).
    """

    __tablename__ = "correction"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=255, unique=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    field: str = Field(max_length=20)  # type | sector
    old_value: str | None = Field(default=None, max_length=40)
    new_value: str = Field(max_length=40)
    corrected_by: str = Field(max_length=128)
    source: str = Field(default="cli", max_length=20)  # cli | slack | dashboard
    at: datetime = _ts()


class TeamState(SQLModel, table=True):
    """Per team: the round-robin pointer; its row is locked while assigning, so capacity holds under concurrency."""

    __tablename__ = "team_state"

    team: str = Field(primary_key=True, max_length=64)
    last_assignee: str | None = Field(default=None, max_length=64)
    updated_at: datetime = _ts()


class Outbox(SQLModel, table=True):
    """Side effects (assign, post to Slack, send mail …) written in the transaction that causes them.

    A row is done at most once (its ``key`` is unique; handlers are idempotent); a
    sweep re-enqueues rows left pending, so a crash between commit and enqueue loses nothing.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_created", "status", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=255, unique=True)
    kind: str = Field(max_length=40)
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id", index=True)
    payload: dict | None = _json()
    status: str = Field(default="pending", max_length=20)  # pending | in_progress | done | failed
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    result: dict | None = _json()
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    done_at: datetime | None = _ts(nullable=True)


class AlertState(SQLModel, table=True):
    """One row per (condition, subject) that ever fired: open while the problem lasts, closed on recovery."""

    __tablename__ = "alert_state"

    key: str = Field(primary_key=True, max_length=255)  # condition:subject
    condition: str = Field(max_length=40)
    subject: str = Field(max_length=200)
    status: str = Field(max_length=10)  # open | closed
    since: datetime = _ts()
    detail: str = _text()
    updated_at: datetime = _ts()


class Acknowledgement(SQLModel, table=True):
    """Each acknowledgement sent, with the normalised address and domain it went to: the hourly limits count these."""

    __tablename__ = "acknowledgement"
    __table_args__ = (Index("ix_acknowledgement_address_at", "address", "at"), Index("ix_acknowledgement_domain_at", "domain", "at"))

    ticket_id: int = Field(foreign_key="ticket.id", primary_key=True)
    address: str = Field(max_length=512)
    domain: str | None = Field(default=None, max_length=255)
    at: datetime = _ts(index=True)


class AuditLog(SQLModel, table=True):
    """Who did — or tried to do — what, where: refused staff actions, privacy exports and erasures."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=255, unique=True)  # the same attempt, delivered twice, is recorded once
    at: datetime = _ts()
    actor: str = Field(max_length=128)  # a member key, or the surface's own id of a stranger (a Slack user id)
    surface: str = Field(max_length=20)  # slack | cli | web | api | scheduler
    action: str = Field(max_length=40)
    target: str = Field(default="", max_length=255)
    outcome: str = Field(max_length=20)  # refused | done
    detail: dict | None = _json()


class SlackEvent(SQLModel, table=True):
    """Every Slack event and action handled, by its id: Slack's retries are recognised and done once."""

    __tablename__ = "slack_event"

    key: str = Field(primary_key=True, max_length=255)  # event_id, or action:<user>:<action_ts>
    kind: str = Field(max_length=40)
    received_at: datetime = _ts()


class StaffCredential(SQLModel, table=True):
    """A person's web password (argon2 hash, never the password); the person is a key of the teams file."""

    __tablename__ = "staff_credential"

    staff_key: str = Field(primary_key=True, max_length=64)
    password_hash: str = Field(max_length=512)
    updated_at: datetime = _ts()


class ApiToken(SQLModel, table=True):
    """A bearer token of the staff JSON API, stored as its SHA-256 (the token itself is shown once, at creation)."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    staff_key: str = Field(max_length=64, index=True)
    name: str = Field(default="", max_length=128)
    created_at: datetime = _ts()
    last_used_at: datetime | None = _ts(nullable=True)
    revoked_at: datetime | None = _ts(nullable=True)


TABLES = [Organisation, OrganisationDomain, Implementation, StageChange, Engagement, EngagementTicket, Contact, ContactIdentity, Ticket, Message, MetricEvent, Quarantine, Correction, TeamState, Outbox, AlertState, Acknowledgement, AuditLog, SlackEvent, StaffCredential, ApiToken]

# The tables as SQLAlchemy Core sees them: what the repository modules of ``storage`` build statements on.
ORGANISATION = Organisation.__table__
ORG_DOMAIN = OrganisationDomain.__table__
CONTACT = Contact.__table__
IDENTITY = ContactIdentity.__table__
TICKET = Ticket.__table__
MESSAGE = Message.__table__
EVENT = MetricEvent.__table__
QUARANTINE = Quarantine.__table__
CORRECTION = Correction.__table__
TEAM_STATE = TeamState.__table__
OUTBOX = Outbox.__table__
ALERT = AlertState.__table__
ACKNOWLEDGEMENT = Acknowledgement.__table__
SLACK_EVENT = SlackEvent.__table__
