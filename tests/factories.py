"""Builders for test data: e-mails as bytes, InboundMessages with sensible defaults."""

from __future__ import annotations

from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import format_datetime

from intake.message import InboundMessage, Party, ThreadRefs, content_hash

NOW = datetime(2026, 11, 2, 9, 30, tzinfo=timezone.utc)


def make_email(
    *,
    sender: str = "Ana Gómez <ana@hacienda.gob.mx>",
    to: str = "OSDS Helpdesk <helpdesk@osds.example>",
    subject: str = "Validation errors in our tender data",
    body: str = "Hello, the data review tool shows validation errors for tender/value. Can you help?",
    message_id: str | None = "<m1@hacienda.gob.mx>",
    in_reply_to: str | None = None,
    references: str | None = None,
    date: datetime = NOW,
    headers: dict[str, str] | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date)
    if message_id:
        msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = references
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes()


def make_message(
    external_id: str = "m1@hacienda.gob.mx",
    *,
    sender: str = "ana@hacienda.gob.mx",
    name: str = "Ana Gómez",
    subject: str = "Validation errors in our tender data",
    text: str = "Hello, the data review tool shows validation errors for tender/value. Can you help?",
    in_reply_to: tuple[str, ...] = (),
    references: tuple[str, ...] = (),
    thread_key: str | None = None,
    signals: dict[str, str] | None = None,
    recipients: tuple[str, ...] = ("helpdesk@osds.example",),
    channel: str = "email",
    received_at: datetime = NOW,
) -> InboundMessage:
    return InboundMessage(
        channel=channel,
        external_id=external_id,
        received_at=received_at,
        sent_at=received_at,
        sender=Party(address=sender, name=name),
        recipients=tuple(Party(address=r) for r in recipients),
        subject=subject,
        text=text,
        thread=ThreadRefs(message_id=external_id, in_reply_to=in_reply_to, references=references, thread_key=thread_key),
        content_hash=content_hash(sender, subject, text),
        signals=signals or {},
        source="test",
    )
