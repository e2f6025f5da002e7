"""Is this message from a robot? Auto-replies, bounces, complaints, list and bulk mail.

Such mail never opens a ticket and is never acknowledged (answering a robot
starts mail loops). The decision is made from headers (RFC 3834
``Auto-Submitted``, ``Precedence``, vendor ``X-Autoreply`` headers, list
managers' headers, an empty ``Return-Path``), the sender (``MAILER-DAEMON``,
``postmaster``), reports read from the body (RFC 3464 delivery reports,
RFC 5965 ARF complaints, Amazon SES notifications, plain-text bounces), and
bounce and out-of-office subjects in several languages — and the reason is
recorded, for staff to see.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from classifiers.text import fold

Kind = Literal["bounce", "auto_reply", "list", "bulk", "receipt", "complaint", "own"]

_BOUNCE_SENDERS = re.compile(r"^(mailer-daemon|postmaster|post_master|mail-daemon|mailerdaemon|bounces?)(\+.*)?@", re.I)
_NULL_PATH_NAMES = re.compile(r"^<?(mailer-daemon|postmaster)(@[^>]*)?>?$", re.I)
_REPORT = re.compile(r"multipart/report.*report-type\s*=\s*\"?([\w-]+)", re.I | re.S)
# Report kinds: RFC 3464/6522 report types, and those intake/mime.py reads from bodies (plain bounces, SES events).
_REPORT_KINDS: dict[str, Kind] = {
    "delivery-status": "bounce",
    "disposition-notification": "receipt",
    "feedback-report": "complaint",
    "plain-bounce": "bounce",
    "ses-bounce": "bounce",
    "ses-complaint": "complaint",
    "ses-delivery": "receipt",
}
_REPORT_NAMES = {
    "plain-bounce": "plain-text bounce from {sender}",
    "ses-bounce": "Amazon SES bounce notification",
    "ses-complaint": "Amazon SES complaint notification",
    "ses-delivery": "Amazon SES delivery notification",
}
# Headers only list managers write (RFC 2369 List-*, ezmlm, fml, Mailman).
_LIST_HEADERS = (
    "list-id", "list-post", "list-help", "list-subscribe", "mailing-list", "x-mlserver", "x-ml-name", "x-mailman-version",
)


def _phrases(*phrases: str) -> re.Pattern[str]:
    """A subject-start pattern over folded phrases (folding strips Japanese voicing marks too: fold both sides)."""
    return re.compile(r"^(" + "|".join(re.escape(fold(p)) for p in phrases) + r")(?![a-z0-9])")


# Subjects that only robots write, in the languages bounces arrive in.
_BOUNCE_SUBJECT = _phrases(
    "undelivered mail", "undeliverable", "delivery status notification", "mail delivery failed", "mail delivery failure",
    "mail delivery system", "mail delivery status", "returned mail", "failure notice", "non remis", "non distribuable",
    "non recapitabile", "unzustellbar", "nicht zustellbar", "no entregado", "nao entregue",
    "недоставленное сообщение", "ваше сообщение не доставлено",
    "メールエラー通知", "メッセージを配信できません", "配信エラー", "配送エラー", "配信不能", "不達", "退信", "系统退信", "投递失败",
)
_AUTO_REPLY_SUBJECT = _phrases(
    "auto reply", "auto-reply", "autoreply", "automatic reply", "auto response", "auto-response", "autoresponse",
    "automatic response", "out of office", "out of the office", "respuesta automatica", "fuera de la oficina",
    "reponse automatique", "absent du bureau", "message d'absence", "message d’absence", "resposta automatica",
    "fora do escritorio", "abwesenheitsnotiz", "automatische antwort", "自動応答", "自動返信",
)
# Microsoft's Junk Mail Reporting Program sends its complaints (an ARF without the report type) under this subject.
_COMPLAINT_SUBJECT = re.compile(r"^complaint about message from \d")
# Subjects a person might also write ("Absence of a field …"): robots only with a header hint.
_WEAK_SUBJECT = re.compile(r"^(absence|ausencia|ausente|on (annual )?leave|away from (the )?office)\b")


@dataclass(frozen=True)
class Verdict:
    kind: Kind
    reason: str


@dataclass(frozen=True)
class _Evidence:
    sender: str
    subject: str
    signals: Mapping[str, str]
    report: Mapping[str, str]


def detect_automated(
    sender: str,
    subject: str,
    signals: Mapping[str, str],
    *,
    message_id: str | None = None,
    report: Mapping[str, str] | None = None,
    own_addresses: frozenset[str] = frozenset(),
    own_message_id_domain: str | None = None,
) -> Verdict | None:
    """The kind of automated e-mail and why, or None for mail written by a person.

    ``signals`` are the message's automation-revealing headers, lower-cased names;
    ``report`` what intake read from a report in its body (``kind`` and fields).
    Our own outgoing mail coming back (a copy to the helpdesk address, a
    forwarding loop) is recognised by its sender, its Message-ID domain, the
    ``X-Helpdesk-Ticket`` header we put on it or an ``X-Loop`` naming us.
    """
    own = _own(sender, signals, message_id, own_addresses, own_message_id_domain)
    if own is not None:
        return own
    evidence = _Evidence(sender, subject, signals, report or {})
    for rule in _RULES:
        verdict = rule(evidence)
        if verdict is not None:
            return verdict
    return None


def _report(e: _Evidence) -> Verdict | None:
    found = _REPORT.search(e.signals.get("content-type", ""))
    if found is not None:
        report_type = found.group(1).lower()
        return Verdict(_REPORT_KINDS.get(report_type, "bounce"), f"multipart/report; report-type={report_type}")
    kind = e.report.get("kind", "")
    if kind in _REPORT_KINDS:
        recipient = e.report.get("recipient", "")
        name = _REPORT_NAMES.get(kind, f"{kind} report").format(sender=e.sender)
        return Verdict(_REPORT_KINDS[kind], name + (f" about {recipient[:80]}" if recipient else ""))
    return None


def _bounce_sender(e: _Evidence) -> Verdict | None:
    if _BOUNCE_SENDERS.match(e.sender):
        return Verdict("bounce", f"sent by {e.sender}")
    return_path = e.signals.get("return-path", "").strip()
    if _NULL_PATH_NAMES.match(return_path):
        return Verdict("bounce", f"Return-Path: {return_path[:80]}")
    if "x-failed-recipients" in e.signals:
        return Verdict("bounce", "X-Failed-Recipients header")
    return None


def _auto_reply_headers(e: _Evidence) -> Verdict | None:
    auto_submitted = e.signals.get("auto-submitted", "").strip().lower()
    if auto_submitted and auto_submitted.split(";")[0].strip() != "no":
        return Verdict("auto_reply", f"Auto-Submitted: {auto_submitted[:80]}")
    for header in ("x-autoreply", "x-autorespond", "x-autogenerated"):
        if header in e.signals:
            return Verdict("auto_reply", f"{header} header present")
    precedence = e.signals.get("precedence", "").strip().lower()
    if precedence in {"auto_reply", "auto-reply"}:
        return Verdict("auto_reply", f"Precedence: {precedence}")
    return None


def _list_or_bulk(e: _Evidence) -> Verdict | None:
    for header in _LIST_HEADERS:
        if header in e.signals:
            return Verdict("list", f"mailing-list traffic ({header.title()}: {e.signals[header][:80]})")
    precedence = e.signals.get("precedence", "").strip().lower()
    if precedence in {"bulk", "junk", "list"}:
        return Verdict("bulk", f"Precedence: {precedence}")
    if "x-amz-sns-message-id" in e.signals:
        return Verdict("bulk", "an Amazon SNS notification (x-amz-sns-message-id header)")
    return None


def _null_return_path(e: _Evidence) -> Verdict | None:
    if "return-path" in e.signals and e.signals["return-path"].strip() in {"<>", ""}:
        return Verdict("auto_reply", "empty Return-Path (RFC 3834: automatic responses use a null sender)")
    return None


def _subject(e: _Evidence) -> Verdict | None:
    folded = fold(e.subject)
    if _COMPLAINT_SUBJECT.match(folded):
        return Verdict("complaint", f"abuse-complaint subject: {e.subject[:60]!r}")
    if _BOUNCE_SUBJECT.match(folded):
        return Verdict("bounce", f"delivery-failure subject: {e.subject[:60]!r}")
    if _AUTO_REPLY_SUBJECT.match(folded):
        return Verdict("auto_reply", f"automatic-reply subject: {e.subject[:60]!r}")
    if _WEAK_SUBJECT.match(folded) and "x-auto-response-suppress" in e.signals:
        return Verdict("auto_reply", f"out-of-office subject with X-Auto-Response-Suppress: {e.subject[:60]!r}")
    return None


# Strongest evidence first: a report says exactly what it is; a subject is the last resort.
_RULES: tuple[Callable[[_Evidence], Verdict | None], ...] = (
    _report, _bounce_sender, _auto_reply_headers, _list_or_bulk, _null_return_path, _subject,
)


def base_address(address: str) -> str:
    """``helpdesk+hd-999@Desk.example`` → ``helpdesk@desk.example``: the mailbox behind any plus or sub-address."""
    local, at, domain = address.strip().lower().rpartition("@")
    if not at:
        return address.strip().lower()
    return f"{local.split('+', 1)[0]}@{domain}"


def _own(
    sender: str, signals: Mapping[str, str], message_id: str | None, own_addresses: frozenset[str], own_domain: str | None
) -> Verdict | None:
    if "x-helpdesk-ticket" in signals:
        return Verdict("own", f"our own outgoing mail (X-Helpdesk-Ticket: {signals['x-helpdesk-ticket'][:40]})")
    if base_address(sender) in {base_address(a) for a in own_addresses}:
        return Verdict("own", f"sent from our own address {sender}")
    if own_domain and message_id and message_id.lower().endswith("@" + own_domain):
        return Verdict("own", f"our own Message-ID domain ({own_domain})")
    loop = signals.get("x-loop", "").strip().strip("<>").lower()
    if loop and loop in own_addresses:
        return Verdict("own", f"X-Loop: {loop} (it has passed through this desk before)")
    return None
