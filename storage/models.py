"""The tables. Unique constraints, not hopes, make every effect happen once.

- ``message``: one row per (channel, external_id) — the dedupe key;
- ``contact_identity``: one contact per (channel, address);
- ``organisation``: one per registrable domain;
- ``metric_event``: append-only, one row per idempotency ``key``;
- ``quarantine``: one row per rejected input or dead letter ``key``.

Timestamps are stored in UTC; SQLite forgets the zone, so ``UTCDateTime``
puts it back on read.

The tables are SQLAlchemy Core ``Table`` objects on ``metadata`` — what the
repository modules of ``storage`` build statements on, and what Alembic compares
the migrations with (``migrations/env.py``). Each also has a SQLModel class
(``Ticket``, ``Message`` …, listed in ``TABLES``) mapped onto that same table, for
the functions that hand out a row as an object: a class is built when it is first
named (``from storage.models import Ticket``): importing SQLModel and SQLAlchemy's
ORM and building the classes' pydantic validators cost a short command (`helpdesk
tickets`) about a tenth of a second, and the tables alone need none of them.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (JSON, Boolean, Column, DateTime, Float, ForeignKey, Index, Integer, MetaData, String, Table, Text,
                        TypeDecorator, UniqueConstraint)
from sqlalchemy import text as sql_text


class UTCDateTime(TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    @property
    def python_type(self) -> type:
        return datetime

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


metadata = MetaData()


# -- column helpers: the column kinds the tables repeat ------------------------------------------------------
def _id() -> Column[Any]:
    return Column("id", Integer, primary_key=True)


def _str(name: str, length: int, *, nullable: bool = False, **options: Any) -> Column[Any]:
    return Column(name, String(length), nullable=nullable, **options)


def _ref(name: str, target: str, *, nullable: bool = False, **options: Any) -> Column[Any]:
    """An integer foreign key to ``target`` (``"ticket.id"``)."""
    return Column(name, Integer, ForeignKey(target), nullable=nullable, **options)


def _ts(name: str, *, nullable: bool = False, index: bool = False) -> Column[Any]:
    return Column(name, UTCDateTime(), nullable=nullable, index=index)


def _json(name: str, python_type: type = dict) -> Column[Any]:
    """A JSON document; ``python_type`` (dict or list) is what its model class's field is annotated with."""
    return Column(name, JSON, nullable=True, info={"python_type": python_type})


def _text(name: str) -> Column[Any]:
    return Column(name, Text, nullable=False, server_default="")


ORGANISATION = Table(
    "organisation", metadata,
    _id(),
    _str("domain", 255, unique=True),
    _str("name", 255, nullable=True),
    _str("sector", 40, nullable=True),
    _str("country", 2, nullable=True),  # ISO 3166-1 alpha-2, upper case
    _str("added_by", 64, nullable=True),  # a staff member's key; empty: created by intake from a domain
    _ts("created_at"),
    _ts("updated_at", nullable=True),
)

# Further domains of an organisation (its first one is ``organisation.domain``): mail from them counts for it.
ORG_DOMAIN = Table(
    "organisation_domain", metadata,
    _str("domain", 255, primary_key=True),
    _ref("organisation_id", "organisation.id", index=True),
    _ts("created_at"),
)

# An organisation's use of one standard, at a stage of the configured ladder.
IMPLEMENTATION = Table(
    "implementation", metadata,
    _id(),
    _ref("organisation_id", "organisation.id", index=True),
    _str("standard", 40),
    _str("stage", 40, index=True),
    _ts("stage_since"),
    _json("urls", list),  # publication and data URLs
    _text("notes"),
    _ts("created_at"),
    _ts("updated_at"),
    UniqueConstraint("organisation_id", "standard", name="uq_implementation_org_standard"),
)

# A move of an implementation from one stage to another: who, when (the funnel of management information).
STAGE_CHANGE = Table(
    "stage_change", metadata,
    _id(),
    _ref("implementation_id", "implementation.id", index=True),
    _ref("organisation_id", "organisation.id", index=True),
    _str("standard", 40),
    _str("from_stage", 40, nullable=True),
    _str("to_stage", 40),
    _str("by", 64),
    _ts("at"),
    Index("ix_stage_change_at", "at"),
)

# Work the desk does for an organisation (a scoping note, a mapping review, a training …), with its effort.
ENGAGEMENT = Table(
    "engagement", metadata,
    _id(),
    _str("key", 255, nullable=True, unique=True),  # idempotency of "add" (a retried command or action)
    _ref("organisation_id", "organisation.id", index=True),
    _str("kind", 40),
    _str("status", 20, default="requested"),  # requested | in_progress | delivered | cancelled
    _str("owner", 64, nullable=True),
    Column("hours", Float, nullable=False, default=0.0, server_default="0"),
    _str("link", 2000, nullable=True),
    _text("note"),
    _str("created_by", 64),
    _ts("requested_at"),
    _ts("started_at", nullable=True),
    _ts("delivered_at", nullable=True),
    _ts("updated_at"),
    Index("ix_engagement_requested_at", "requested_at"),
)

# A ticket an engagement came from (``origin``) or produced (``produced``).
ENGAGEMENT_TICKET = Table(
    "engagement_ticket", metadata,
    _ref("engagement_id", "engagement.id", primary_key=True),
    _ref("ticket_id", "ticket.id", primary_key=True, index=True),
    _str("relation", 10, default="origin"),
)

CONTACT = Table(
    "contact", metadata,
    _id(),
    _str("display_name", 512, default=""),
    _ref("organisation_id", "organisation.id", nullable=True, index=True),
    _ts("created_at"),
)

# How a contact appears on one channel: an e-mail address, a Slack user id, an X handle.
IDENTITY = Table(
    "contact_identity", metadata,
    _id(),
    _ref("contact_id", "contact.id", index=True),
    _str("channel", 20),
    _str("address", 512),
    _ts("created_at"),
    UniqueConstraint("channel", "address", name="uq_contact_identity_channel_address"),
)

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

# One conversation with one enquirer. ``id`` is the human number (HD-<id>).
TICKET = Table(
    "ticket", metadata,
    _id(),
    _str("status", 20, default="new", index=True),
    _str("subject", 2000, default=""),
    _str("channel", 20),
    _ref("contact_id", "contact.id", nullable=True, index=True),
    _ref("organisation_id", "organisation.id", nullable=True, index=True),
    _str("type", 40),
    Column("type_confidence", Float, nullable=False, default=0.0),
    _str("sector", 40),
    Column("sector_confidence", Float, nullable=False, default=0.0),
    _str("language", 8),
    Column("language_confidence", Float, nullable=False, default=0.0),
    Column("needs_triage", Boolean, nullable=False, default=False),
    _json("classification"),
    _str("team", 64),
    _str("assignee", 64, nullable=True),
    _str("priority", 16, default="normal"),
    _str("routing_rule", 128, nullable=True),
    _json("routing"),
    _json("tags", list),
    _json("assignment"),  # who was chosen and why (or why the ticket waits in the backlog)
    Column("assignment_count", Integer, nullable=False, default=0, server_default="0"),
    _json("suggestions", list),  # documentation pages that may answer it: [{title, url, score}], best first
    Column("docs_gap", Boolean, nullable=True),  # no page matched well: a possible gap in the documentation
    _str("card_channel", 32, nullable=True),  # the current Slack card: replies in its thread answer the enquirer
    _str("card_ts", 32, nullable=True, index=True),
    _ts("assigned_at", nullable=True),
    _str("sla_policy", 64, nullable=True),
    _ts("first_response_due_at", nullable=True),
    _ts("resolution_due_at", nullable=True),
    _ts("sla_paused_at", nullable=True),  # waiting on the enquirer since
    Column("paused_business_seconds", Float, nullable=False, default=0.0, server_default="0"),
    # Measured once, when they happen (reports aggregate numbers; they never recompute calendars):
    Column("first_response_seconds", Float, nullable=True),  # calendar time from opening to the first reply to the enquirer
    Column("first_response_business_seconds", Float, nullable=True),
    Column("first_response_met", Boolean, nullable=True),  # within the SLA target
    Column("resolution_seconds", Float, nullable=True),  # to the first resolution; reopened tickets are counted apart
    Column("resolution_business_seconds", Float, nullable=True),  # minus time waiting on the enquirer
    Column("resolution_met", Boolean, nullable=True),
    Column("reopened_count", Integer, nullable=False, default=0, server_default="0"),
    _ts("created_at"),
    _ts("updated_at"),
    _ts("first_response_at", nullable=True),
    _ts("resolved_at", nullable=True),
    Index("ix_ticket_team_status", "team", "status"),
    Index("ix_ticket_contact_created", "contact_id", "created_at"),
    Index("ix_ticket_volumes", "created_at", *VOLUME_COLUMNS),  # also serves what an index of created_at alone did
    Index("ix_ticket_times", "created_at", *MEASURE_COLUMNS),
    # The backlog at a moment: the tickets never resolved (a partial index: see PARTIAL_INDEXES), and those resolved after it.
    Index("ix_ticket_unresolved", "created_at", "assignee"),
    Index("ix_ticket_resolved", "resolved_at", "created_at", "assignee"),
    # A member's open tickets, counted at every assignment (storage.tickets.open_loads) from the index alone: without
    # it the count read every open ticket's row, and assigning slowed as the backlog grew.
    Index("ix_ticket_assignee_status", "assignee", "status"),
)

# A message in or out. Automated mail that belongs to no ticket keeps ``ticket_id`` empty.
MESSAGE = Table(
    "message", metadata,
    _id(),
    _ref("ticket_id", "ticket.id", nullable=True, index=True),
    _str("channel", 20),
    _str("external_id", 998),
    _str("direction", 3, default="in"),
    _str("kind", 20, default="enquiry"),
    _ref("contact_id", "contact.id", nullable=True),
    _str("sender_address", 512, default=""),
    _str("sender_name", 512, default=""),
    _str("subject", 2000, default=""),
    _text("text"),
    Column("new_text", Text, nullable=True),  # the reply without quoted history
    Column("html", Text, nullable=True),
    _json("report"),  # a delivery/disposition report: action, status, recipient, original message id
    _json("signals"),  # the headers that reveal automated or unauthenticated mail (Auto-Submitted, Authentication-Results …)
    _str("language", 8, nullable=True),
    _str("message_id", 998, nullable=True),
    _str("thread_key", 512, nullable=True),
    _json("refs", list),
    _str("thread_rule", 40, nullable=True),
    _str("thread_reason", 1000, nullable=True),
    _str("automated_kind", 20, nullable=True),
    _str("automated_reason", 500, nullable=True),
    _str("content_hash", 64),
    _str("raw_ref", 64, nullable=True),
    _json("attachments", list),
    _json("recipients", list),
    _json("defects", list),
    Column("truncated", Boolean, nullable=False, default=False),
    _str("source", 2000, default=""),
    _str("delivery_id", 64, nullable=True),
    _ts("sent_at", nullable=True),
    _ts("received_at"),
    _ts("stored_at"),
    _ts("edited_at", nullable=True),
    _ts("deleted_at", nullable=True),
    _str("author", 64, nullable=True),  # the staff member who wrote an outbound message or note
    _str("status", 20, nullable=True),  # outbound: queued | sending | sent | failed
    Column("error", Text, nullable=True),
    UniqueConstraint("channel", "external_id", name="uq_message_channel_external_id"),
    Index("ix_message_channel_message_id", "channel", "message_id"),
    Index("ix_message_channel_thread_key", "channel", "thread_key"),
)

# Append-only facts for management information; ``key`` makes each fact count once.
EVENT = Table(
    "metric_event", metadata,
    _id(),
    _str("key", 255, unique=True),
    _str("kind", 40),
    _ref("ticket_id", "ticket.id", nullable=True, index=True),
    _str("channel", 20, nullable=True),
    _ts("at"),
    _json("data"),
    Index("ix_metric_event_kind_at", "kind", "at"),
)

# Input that could not become a ticket, with the reason; visible to operators, replayable.
QUARANTINE = Table(
    "quarantine", metadata,
    _id(),
    _str("key", 255, unique=True),
    _str("kind", 20),  # rejected (unparseable input) | dead_letter (failed in a worker)
    _str("status", 20, default="open", server_default="open"),  # open | replayed | purged
    _str("queue", 64, nullable=True),
    _str("message_id", 64, nullable=True, index=True),  # the dramatiq message id of a dead letter
    _ts("replayed_at", nullable=True),
    _str("channel", 20, nullable=True),
    _str("reason", 100),
    _text("detail"),
    _str("source", 2000, default=""),
    _str("raw_ref", 64, nullable=True),
    _json("payload"),
    _ts("received_at", nullable=True),
    _ts("created_at"),
)

# A staff correction of a ticket's classification: training data, with who and when. ``key`` makes a correction count
# once however often the action is delivered (a Slack button press retried, a command run twice).
CORRECTION = Table(
    "correction", metadata,
    _id(),
    _str("key", 255, unique=True),
    _ref("ticket_id", "ticket.id", index=True),
    _str("field", 20),  # type | sector
    _str("old_value", 40, nullable=True),
    _str("new_value", 40),
    _str("corrected_by", 128),
    _str("source", 20, default="cli"),  # cli | slack | dashboard
    _ts("at"),
)

# Per team: the round-robin pointer; its row is locked while assigning, so capacity holds under concurrency.
TEAM_STATE = Table(
    "team_state", metadata,
    _str("team", 64, primary_key=True),
    _str("last_assignee", 64, nullable=True),
    _ts("updated_at"),
)

# Side effects (assign, post to Slack, send mail …) written in the transaction that causes them. A row is done at most
# once (its ``key`` is unique; handlers are idempotent); a sweep re-enqueues rows left pending, so a crash between
# commit and enqueue loses nothing.
OUTBOX = Table(
    "outbox", metadata,
    _id(),
    _str("key", 255, unique=True),
    _str("kind", 40),
    _ref("ticket_id", "ticket.id", nullable=True, index=True),
    _json("payload"),
    _str("status", 20, default="pending"),  # pending | in_progress | done | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=True),
    _json("result"),
    _ts("created_at"),
    _ts("updated_at"),
    _ts("done_at", nullable=True),
    Index("ix_outbox_status_created", "status", "created_at"),
)

# One row per (condition, subject) that ever fired: open while the problem lasts, closed on recovery.
ALERT = Table(
    "alert_state", metadata,
    _str("key", 255, primary_key=True),  # condition:subject
    _str("condition", 40),
    _str("subject", 200),
    _str("status", 10),  # open | closed
    _ts("since"),
    _text("detail"),
    _ts("updated_at"),
)

# Each acknowledgement sent, with the normalised address and domain it went to: the hourly limits count these.
ACKNOWLEDGEMENT = Table(
    "acknowledgement", metadata,
    _ref("ticket_id", "ticket.id", primary_key=True),
    _str("address", 512),
    _str("domain", 255, nullable=True),
    _ts("at", index=True),
    Index("ix_acknowledgement_address_at", "address", "at"),
    Index("ix_acknowledgement_domain_at", "domain", "at"),
)

# Who did — or tried to do — what, where: refused staff actions, privacy exports and erasures.
AUDIT = Table(
    "audit_log", metadata,
    _id(),
    _str("key", 255, unique=True),  # the same attempt, delivered twice, is recorded once
    _ts("at"),
    _str("actor", 128),  # a member key, or the surface's own id of a stranger (a Slack user id)
    _str("surface", 20),  # slack | cli | web | api | scheduler
    _str("action", 40),
    _str("target", 255, default=""),
    _str("outcome", 20),  # refused | done
    _json("detail"),
    Index("ix_audit_log_at", "at"),
)

# Every Slack event and action handled, by its id: Slack's retries are recognised and done once.
SLACK_EVENT = Table(
    "slack_event", metadata,
    _str("key", 255, primary_key=True),  # event_id, or action:<user>:<action_ts>
    _str("kind", 40),
    _ts("received_at"),
)

# A person's web password (argon2 hash, never the password); the person is a key of the teams file.
CREDENTIAL = Table(
    "staff_credential", metadata,
    _str("staff_key", 64, primary_key=True),
    _str("password_hash", 512),
    _ts("updated_at"),
)

# A bearer token of the staff JSON API, stored as its SHA-256 (the token itself is shown once, at creation).
API_TOKEN = Table(
    "api_token", metadata,
    _id(),
    _str("token_hash", 64, unique=True),
    _str("staff_key", 64, index=True),
    _str("name", 128, default=""),
    _ts("created_at"),
    _ts("last_used_at", nullable=True),
    _ts("revoked_at", nullable=True),
)


# -- partial indexes ----------------------------------------------------------------------------------------
# An index of some rows only: its name → the condition, the same on both databases (migration 0011 creates them so).
# SQLAlchemy takes the condition as one keyword per dialect (``sqlite_where``, ``postgresql_where``), and naming a
# dialect's keyword imports that dialect — PostgreSQL's costs a command on SQLite 0.02 s. So the condition is declared
# for a dialect when an engine of it is made (``storage.db.create_db_engine``) and where Alembic compares the tables
# with a database (``migrations/env.py``), both through ``declare_partial_indexes``.
PARTIAL_INDEXES = {"ix_ticket_unresolved": "resolved_at IS NULL"}
_DIALECTS_DECLARED: set[str] = set()
_LOCK = threading.RLock()  # a dialect's conditions, and each model class, are added once however many threads ask


def declare_partial_indexes(dialect_name: str) -> None:
    """Give each partial index its condition for ``dialect_name`` ("sqlite" or "postgresql"); once per dialect."""
    if dialect_name in _DIALECTS_DECLARED:
        return
    with _LOCK:
        if dialect_name in _DIALECTS_DECLARED:
            return
        for table in metadata.tables.values():
            for index in table.indexes:
                if index.name in PARTIAL_INDEXES:
                    index.dialect_kwargs[f"{dialect_name}_where"] = sql_text(PARTIAL_INDEXES[index.name])
        _DIALECTS_DECLARED.add(dialect_name)


# -- the SQLModel classes, built when first named -----------------------------------------------------------
# Class name → table, in the order of TABLES.
MODEL_TABLES: dict[str, Table] = {
    "Organisation": ORGANISATION, "OrganisationDomain": ORG_DOMAIN, "Implementation": IMPLEMENTATION,
    "StageChange": STAGE_CHANGE, "Engagement": ENGAGEMENT, "EngagementTicket": ENGAGEMENT_TICKET, "Contact": CONTACT,
    "ContactIdentity": IDENTITY, "Ticket": TICKET, "Message": MESSAGE, "MetricEvent": EVENT, "Quarantine": QUARANTINE,
    "Correction": CORRECTION, "TeamState": TEAM_STATE, "Outbox": OUTBOX, "AlertState": ALERT,
    "Acknowledgement": ACKNOWLEDGEMENT, "AuditLog": AUDIT, "SlackEvent": SLACK_EVENT, "StaffCredential": CREDENTIAL,
    "ApiToken": API_TOKEN,
}


def __getattr__(name: str) -> Any:
    """``Ticket``, ``Message`` … (and ``TABLES``, all of them): built on first use, then ordinary module attributes."""
    if name == "TABLES":
        return [__getattr__(class_name) for class_name in MODEL_TABLES]
    table = MODEL_TABLES.get(name)
    if table is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _LOCK:  # two threads naming a class at once must not map the table twice
        if name not in globals():
            globals()[name] = _model_class(name, table)
    return globals()[name]


def _model_class(name: str, table: Table) -> type:
    """A SQLModel table class mapped onto ``table`` itself: one field per column, in the table's order.

    As SQLModel derives them from a class body: a nullable column (or the autoincrement ``id``) is ``T | None`` and
    defaults to None; otherwise the column's default, its server default (a text column's ``""``), None for a
    timestamp (set on insert), or no default at all (required)."""
    import types  # noqa: PLC0415

    from sqlmodel import Field, SQLModel  # noqa: PLC0415

    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {"__module__": __name__, "__qualname__": name, "__tablename__": table.name, "__table__": table,
                                 "__doc__": f"A row of ``{table.name}`` (the table ``storage.models`` declares)."}
    for column in table.columns:
        python_type = column.info.get("python_type") or column.type.python_type
        optional = column.nullable or column is table.autoincrement_column
        annotations[column.key] = python_type | None if optional else python_type
        if column.default is not None:
            default: Any = column.default.arg  # type: ignore[attr-defined]
        elif optional or python_type is datetime:
            default = None
        elif column.server_default is not None:
            default = column.server_default.arg  # type: ignore[attr-defined]
        else:
            namespace[column.key] = Field(sa_column=column)
            continue
        namespace[column.key] = Field(default=default, sa_column=column)
    namespace["__annotations__"] = annotations
    return types.new_class(name, (SQLModel,), {"table": True}, lambda body: body.update(namespace))
