"""The InboundMessage: the one unit of work every channel adapter produces.

It is normalized (the same shape for e-mail, Slack, X and web forms), frozen,
JSON-safe and versioned. Its envelope — ``channel`` and ``external_id``, the
dedupe key — travels untouched through every stage; stages return new values
and never change a message.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from intake.errors import MessageDecodeError

SCHEMA_VERSION = 1

Channel = Literal["email", "slack", "x", "web"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Party(_Frozen):
    """A sender or recipient: an e-mail address, Slack user id or X handle, and a display name."""

    address: str = Field(max_length=512)
    name: str = Field("", max_length=512)

    @property
    def domain(self) -> str | None:
        if "@" not in self.address:
            return None
        return self.address.rsplit("@", 1)[1].lower().strip(".") or None


class Attachment(_Frozen):
    """Metadata of an attachment; the bytes live in the raw archive under ``sha256`` when ``stored``."""

    filename: str = Field("", max_length=512)
    content_type: str = Field("application/octet-stream", max_length=255)
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    inline: bool = False
    stored: bool = False


class ThreadRefs(_Frozen):
    """What a message says about the conversation it belongs to."""

    message_id: str | None = Field(None, max_length=998)
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    thread_key: str | None = Field(None, max_length=512)

    def referenced_ids(self) -> tuple[str, ...]:
        """Every message id this one points at, nearest first, without repeats."""
        seen: dict[str, None] = {}
        for ref in (*self.in_reply_to, *reversed(self.references)):
            if ref and ref != self.message_id:
                seen.setdefault(ref, None)
        return tuple(seen)


class InboundMessage(_Frozen):
    """One message received on one channel. ``(channel, external_id)`` identifies it."""

    v: int = SCHEMA_VERSION
    channel: Channel
    external_id: str = Field(min_length=1, max_length=998)
    received_at: datetime
    sent_at: datetime | None = None
    sender: Party
    identities: dict[str, str] = Field(default_factory=dict, description="the sender's other identities, e.g. a Slack user's profile e-mail")
    recipients: tuple[Party, ...] = ()
    subject: str = Field("", max_length=2000)
    text: str = ""
    new_text: str | None = Field(None, description="what the author wrote for this message: no quoted history, no signature")
    html: str | None = None
    thread: ThreadRefs = ThreadRefs()
    attachments: tuple[Attachment, ...] = ()
    raw_ref: str | None = Field(None, description="sha256 of the archived raw source")
    source: str = Field("", max_length=2000, description="where it was read: file path, mailbox and UID, event id")
    content_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    signals: dict[str, str] = Field(default_factory=dict, description="lower-cased headers that reveal automated mail")
    report: dict[str, str] | None = Field(None, description="a delivery or disposition report: action, status, recipient, original message id")
    truncated: bool = False
    defects: tuple[str, ...] = ()

    @field_validator("received_at", "sent_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("timestamps must carry a time zone")
        return value

    @property
    def key(self) -> tuple[str, str]:
        return (self.channel, self.external_id)

    @property
    def fresh_text(self) -> str:
        """The new part when it is known, else the whole text."""
        return self.new_text if self.new_text is not None else self.text

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, payload: str | bytes) -> "InboundMessage":
        """Decode a queued payload; raises MessageDecodeError on anything invalid or from a newer schema."""
        try:
            message = cls.model_validate_json(payload)
        except ValidationError as exc:
            raise MessageDecodeError(f"not an InboundMessage: {exc.error_count()} error(s): {exc.errors()[0]['msg']}") from exc
        if message.v > SCHEMA_VERSION:
            raise MessageDecodeError(f"schema version {message.v} is newer than this worker understands ({SCHEMA_VERSION})")
        return message


def content_hash(*parts: str) -> str:
    """A stable hash of a message's meaningful content (used as key when a channel gives no id)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()
