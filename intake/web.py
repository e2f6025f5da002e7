"""The web channel: an enquiry written in the public form (``/enquiry``) or sent to ``POST /api/v1/enquiries``.

``Enquiry`` validates the fields (bounded, one line where a line is meant, an address that looks like
one); ``to_inbound`` makes the ``InboundMessage`` on channel ``web``. Its ``external_id`` — the dedupe key
— is a hash of the client's key (the form's own submission id, or the API's ``Idempotency-Key``; without
one, the content) together with the address, so a double-click or a retried request opens one ticket,
and nobody can collide with someone else's key. The enquirer's address is also their e-mail identity:
the acknowledgement and replies go by e-mail, and they thread with what they send by mail.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import datetime, timezone

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from intake.message import InboundMessage, Party, content_hash
from intake.errors import InvalidEnquiry

MAX_MESSAGE_CHARS = 20_000
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
FIELDS = ("name", "email", "subject", "message", "organisation")


def _line(value: str) -> str:
    """One line of text: controls, line breaks and bidi overrides out, spaces collapsed."""
    return " ".join(_CONTROL.sub(" ", unicodedata.normalize("NFC", value)).split())


class Enquiry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=254)
    subject: str = Field(min_length=1, max_length=300)
    message: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    organisation: str = Field("", max_length=200)

    @field_validator("name", "subject", "organisation", mode="before")
    @classmethod
    def _one_line(cls, value: object) -> object:
        return _line(value) if isinstance(value, str) else value

    @field_validator("message", mode="before")
    @classmethod
    def _text(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        text = unicodedata.normalize("NFC", value.replace("\r\n", "\n").replace("\r", "\n"))
        return re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]", "", text)

    @field_validator("email")
    @classmethod
    def _address(cls, value: str) -> str:
        if not _EMAIL.fullmatch(value):
            raise ValueError("not an e-mail address")
        local, _, domain = value.rpartition("@")
        return f"{local}@{domain.lower()}"


def parse(fields: dict[str, object]) -> Enquiry:
    """An Enquiry from the submitted fields (unknown fields are refused); InvalidEnquiry names each problem."""
    unknown = sorted(k for k in fields if k not in FIELDS)
    if unknown:
        raise InvalidEnquiry({k[:40]: "unknown field" for k in unknown[:10]})
    try:
        return Enquiry.model_validate(fields)
    except ValidationError as exc:
        problems: dict[str, str] = {}
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "body"
            problems.setdefault(field, _plain(error))
        raise InvalidEnquiry(problems) from exc


def _plain(error: dict) -> str:
    kind = error.get("type", "")
    if kind == "missing":
        return "required"
    if kind == "string_too_short":
        return "required" if (error.get("ctx") or {}).get("min_length") == 1 else "too short"
    if kind == "string_too_long":
        return f"at most {(error.get('ctx') or {}).get('max_length')} characters"
    if kind == "string_type":
        return "must be text"
    return str(error.get("msg", "invalid")).removeprefix("Value error, ")


def reference(external_id: str) -> str:
    """The reference an enquirer is given at once (the ticket number follows by e-mail)."""
    return "WEB-" + hashlib.sha256(external_id.encode()).hexdigest()[:10].upper()


def external_id(enquiry: Enquiry, client_key: str | None, via: str) -> str:
    basis = client_key if client_key else content_hash(enquiry.subject, enquiry.message)
    return f"{via}:" + hashlib.sha256(f"{enquiry.email.lower()}\0{basis}".encode("utf-8", "surrogatepass")).hexdigest()


def to_inbound(enquiry: Enquiry, *, client_key: str | None, via: str, received_at: datetime | None = None) -> InboundMessage:
    """The enquiry as an InboundMessage on channel ``web``; ``via`` is "form" or "api"."""
    now = received_at or datetime.now(timezone.utc)
    ident = external_id(enquiry, client_key, via)
    text = enquiry.message
    if enquiry.organisation:  # as a signature, where the sector classifier looks for an organisation's name
        text = f"{text}\n\n{enquiry.name}\n{enquiry.organisation}"
    return InboundMessage(
        channel="web",
        external_id=ident,
        received_at=now,
        sent_at=now,
        sender=Party(address=enquiry.email, name=enquiry.name),
        identities={"email": enquiry.email.lower()},
        subject=enquiry.subject,
        text=text,
        source=f"web:{via}",
        content_hash=content_hash(enquiry.email, enquiry.subject, text),
    )
