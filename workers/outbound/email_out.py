"""Replies by e-mail: composed as a reply in the enquirer's thread, sent over SMTP.

Each reply carries:
- a Message-ID under our own domain (``helpdesk.<mail domain>``), recorded on the
  message *before* sending — the enquirer's answer names it and threads back;
- ``In-Reply-To`` the enquirer's latest message and ``References`` its chain;
- the ticket's token in the subject (``… [HD-123]``) and, with plus-addressing,
  a Reply-To of the ticket's own (``helpdesk+hd-123@…``), so a reply threads even
  from clients that drop the headers;
- ``X-Helpdesk-Ticket``, by which our own copies are recognised when they come
  back in; acknowledgements add ``Auto-Submitted: auto-replied`` (RFC 3834) so
  other robots do not answer them.

SMTP cannot tell whether an earlier attempt went out, so this sender does not
detect earlier sends: a reply whose previous attempt died mid-send is marked
failed ("unconfirmed") for staff to check, never sent a second time.
"""

from __future__ import annotations

import re
import smtplib
import ssl
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from config.settings import Settings, SmtpSettings
from storage import messages
from workers.outbound import escaping
from workers.intake.conversation import TicketKeys
from workers.errors import EffectRefused, NotSent

_RE_PREFIX = re.compile(r"^\s*((re|fw|fwd|aw|sv|vs|antw|rif|r|ref)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
MAX_REFERENCES = 20


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: str
    user: str | None
    password: str | None
    ca_file: Path | None
    timeout: float

    @classmethod
    def from_group(cls, smtp: SmtpSettings) -> "SmtpConfig | None":
        if not smtp.host:
            return None
        return cls(smtp.host, smtp.resolved_port, smtp.security, smtp.user, smtp.password, smtp.ca_file, float(smtp.timeout_seconds))

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self.ca_file is not None:
            context.load_verify_locations(cafile=str(self.ca_file))
        return context


def reply_address(mail_from: str, prefix: str, ticket_id: int, key: str | None = None) -> str:
    """``helpdesk@osds.example`` → ``helpdesk+hd-123-k7f3qa@osds.example`` (what the threader's reply-address rule reads;
    the key lets a colleague the enquirer copies in join the ticket, while a guessed number does not)."""
    local, _, domain = mail_from.partition("@")
    suffix = f"-{key}" if key else ""
    return f"{local.split('+', 1)[0]}+{prefix.lower()}-{ticket_id}{suffix}@{domain}"


def reply_subject(subject: str, token: str) -> str:
    base = _RE_PREFIX.sub("", subject or "").strip() or "Your enquiry"
    if token.lower() not in base.lower():
        base = f"{base} [{token}]"
    return f"Re: {base}"


MAIL_CHANNELS = ("email", "web")  # a web enquiry gives an e-mail address: it is answered by mail


@dataclass(frozen=True)
class Thread:
    """What a reply answers: the enquirer's latest message on the ticket."""

    to_address: str
    to_name: str
    subject: str
    in_reply_to: str | None
    references: tuple[str, ...]


def thread_of(engine: Engine, ticket_id: int) -> Thread | None:
    row = messages.latest_from_enquirer(engine, ticket_id, MAIL_CHANNELS)
    if row is None or "@" not in (row.sender_address or ""):
        return None
    refs = tuple(r for r in (row.refs or []) if isinstance(r, str))
    chain = (*refs, row.message_id) if row.message_id else refs
    return Thread(row.sender_address, row.sender_name or "", row.subject or "", row.message_id, tuple(dict.fromkeys(chain))[-MAX_REFERENCES:])


def compose(*, text: str, thread: Thread, message_id: str, token: str, mail_from: str, desk_name: str, reply_to: str | None,
            sent_at: datetime, automatic: bool = False, subject: str | None = None, ticket_ref: str | None = None) -> EmailMessage:
    mail = EmailMessage(policy=SMTP)
    # Every value from outside is one clean line: a CR/LF in a subject or name can inject no header (and cannot
    # make the send fail halfway, recorded as "may have gone out" when nothing did).
    mail["From"] = formataddr((escaping.header(desk_name), mail_from))
    to_name = escaping.header(thread.to_name, 200)
    mail["To"] = formataddr((to_name, thread.to_address)) if to_name else thread.to_address
    mail["Subject"] = escaping.header(subject) or reply_subject(escaping.header(thread.subject), token)
    mail["Date"] = format_datetime(sent_at.astimezone(timezone.utc))
    mail["Message-ID"] = f"<{message_id}>"
    if thread.in_reply_to:
        mail["In-Reply-To"] = f"<{thread.in_reply_to}>"
    if thread.references:
        mail["References"] = " ".join(f"<{r}>" for r in thread.references)
    if reply_to:
        mail["Reply-To"] = reply_to
    mail["X-Helpdesk-Ticket"] = ticket_ref or token
    if automatic:
        mail["Auto-Submitted"] = "auto-replied"
    mail.set_content(escaping.body(text), charset="utf-8")
    return mail


class EmailSender:
    """The e-mail channel's sender for ``Effects.senders["email"]``."""

    detects_earlier_sends = False

    def __init__(self, engine: Engine, smtp: SmtpConfig, *, mail_from: str, message_id_domain: str, prefix: str, desk_name: str,
                 plus_addressing: bool = True, keys: TicketKeys | None = None) -> None:
        self.keys = keys
        self.engine = engine
        self.smtp = smtp
        self.mail_from = mail_from
        self.domain = message_id_domain
        self.prefix = prefix
        self.desk_name = desk_name
        self.plus_addressing = plus_addressing

    @classmethod
    def from_group(cls, engine: Engine, smtp: SmtpSettings, *, prefix: str, desk_name: str,
                   keys: TicketKeys | None = None) -> "EmailSender | None":
        """None while SMTP is off (replies wait, queued); a half-configured SMTP stops the worker at start instead
        (``config.settings.require``)."""
        server = SmtpConfig.from_group(smtp)
        if server is None or not smtp.can_send:
            return None
        return cls(engine, server, mail_from=smtp.mail_from, message_id_domain=smtp.resolved_message_id_domain,  # type: ignore[arg-type]
                   prefix=prefix, desk_name=desk_name, plus_addressing=smtp.reply_to_plus_addressing, keys=keys)

    @classmethod
    def from_settings(cls, engine: Engine, settings: Settings, desk_name: str, keys: TicketKeys | None = None) -> "EmailSender | None":
        """``from_group`` for callers holding the whole settings."""
        return cls.from_group(engine, settings.smtp, prefix=settings.ticket_prefix, desk_name=desk_name, keys=keys)

    def __call__(self, message: Any, ticket: Any, item: Any) -> dict[str, Any]:
        thread = thread_of(self.engine, ticket.id)
        if thread is None:
            raise EffectRefused(f"{self.prefix}-{ticket.id} has no e-mail from the enquirer to answer")
        message_id = message.message_id or f"{self.prefix.lower()}-{ticket.id}.{uuid.uuid4().hex[:16]}@{self.domain}"
        number = f"{self.prefix}-{ticket.id}"
        token = self.keys.token(self.prefix, ticket.id) if self.keys is not None else number
        key = self.keys.key(ticket.id) if self.keys is not None else None
        reply_to = reply_address(self.mail_from, self.prefix, ticket.id, key) if self.plus_addressing else None
        automatic = message.kind == "acknowledgement"
        mail = compose(text=message.text, thread=thread, message_id=message_id, token=token, mail_from=self.mail_from,
                       desk_name=self.desk_name, reply_to=reply_to, sent_at=datetime.now(timezone.utc), automatic=automatic,
                       subject=message.subject or None, ticket_ref=number)
        # intent, with the id the enquirer's answer will name, before anything leaves
        messages.change(self.engine, message.id, {
            "message_id": message_id, "subject": str(mail["Subject"])[:2000], "refs": list(thread.references),
            "recipients": [{"address": thread.to_address, "name": thread.to_name, "role": "to"}], "sender_address": self.mail_from,
        })
        self._send(mail, thread.to_address)
        return {"message_id": message_id, "to": thread.to_address}

    def _send(self, mail: EmailMessage, recipient: str) -> None:
        """Send, telling apart what certainly did not leave (``NotSent``: retried) from what may have.

        Until the content is handed over with DATA nothing can be delivered; a failure after that, before
        the server's answer, is the ambiguous case the caller records as unconfirmed.
        """
        smtp = self.smtp
        try:
            if smtp.security == "tls":
                client: smtplib.SMTP = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout, context=smtp.context())
            else:
                client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
        except (OSError, smtplib.SMTPException) as exc:
            raise NotSent(f"SMTP: cannot connect to {smtp.host}:{smtp.port}: {exc}") from exc
        with client:
            try:
                client.ehlo_or_helo_if_needed()
                if smtp.security == "starttls":
                    client.starttls(context=smtp.context())
                    client.ehlo()
                if smtp.user:
                    client.login(smtp.user, smtp.password or "")
                code, reply = client.mail(self.mail_from)
                _check(code, reply, "MAIL FROM")
                code, reply = client.rcpt(recipient)
                _check(code, reply, f"RCPT TO {recipient}")
            except smtplib.SMTPAuthenticationError as exc:
                raise EffectRefused(f"SMTP login refused: {exc}") from exc
            except (OSError, smtplib.SMTPException) as exc:
                raise NotSent(f"SMTP: {exc}") from exc
            code, reply = client.data(mail.as_bytes(policy=mail.policy))  # from here on a failure is ambiguous
            _check(code, reply, "DATA")


def _check(code: int, reply: bytes, step: str) -> None:
    """A 5xx is a refusal (fails the message, visible to staff); a 4xx is temporary (sent again later)."""
    if 200 <= code < 400:
        return
    text = f"SMTP {step}: {code} {reply.decode('utf-8', 'replace')}"
    if 500 <= code < 600:
        raise EffectRefused(text)
    raise NotSent(text)
