"""Hostile and broken e-mails, as bytes: reusable by every test of the intake path (prescan, parse pool, IMAP, faults).

Each generator returns one raw message. ``HOSTILE`` names them with what intake must make of each:
a quarantine reason (one of ``reasons``) or, when ``reasons`` holds ``"message"``, an ordinary
InboundMessage (broken but readable mail must still become a ticket). Sizes are the attacker's
figures from issue #13 unless a test asks for smaller ones.
"""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

_HEAD = (
    b"From: Mallory <mallory@attacker.example>\r\n"
    b"To: helpdesk@osds.example\r\n"
    b"Date: Sat, 05 Dec 2026 09:00:00 +0000\r\n"
)
_TEXT = b"Hello, our publication fails validation. Can you help?\r\n"


def _mail(headers: bytes, body: bytes = _TEXT, *, head: bytes = _HEAD, message_id: bytes | None = None) -> bytes:
    if message_id is None:  # one per distinct mail, so that dedupe keeps every hostile mail apart
        message_id = b"<%s@attacker.example>" % hashlib.sha1(headers[:4096] + body[:4096] + b"%d" % len(headers + body)).hexdigest().encode()
    return head + b"Message-ID: " + message_id + b"\r\n" + headers + b"\r\n" + body


def deep_multipart(depth: int = 1000) -> bytes:
    """``depth`` multiparts nested in one another (the attacker's 77 KB, 1,000 levels): RecursionError in the stdlib."""
    opening = b"".join(
        b"--b%d\r\nContent-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n" % (i - 1, i) for i in range(1, depth)
    )
    closing = b"".join(b"--b%d--\r\n" % i for i in reversed(range(depth)))
    body = opening + b"--b%d\r\nContent-Type: text/plain\r\n\r\n" % (depth - 1) + _TEXT + closing
    return _mail(b"Subject: deep\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b0\"\r\n", body)


def deep_message_rfc822(depth: int = 1000) -> bytes:
    """Forwarded messages nested ``depth`` deep (message/rfc822 inside message/rfc822 …)."""
    inner = b"From: a@b.example\r\nSubject: innermost\r\nContent-Type: text/plain\r\n\r\n" + _TEXT
    wrap = b"From: a@b.example\r\nSubject: fwd\r\nMIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\n"
    return _mail(b"Subject: forwarded\r\nMIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n", wrap * (depth - 1) + inner)


def nested_comments_from(depth: int = 5000) -> bytes:
    """``From`` whose address sits in ``depth`` nested comments (10 KB): RecursionError in the header parser."""
    head = b"From: " + b"(" * depth + b"x" + b")" * depth + b" mallory@attacker.example\r\nTo: helpdesk@osds.example\r\n"
    return _mail(b"Subject: comments\r\n", head=head)


def encoded_words_subject(count: int = 50_000) -> bytes:
    """A Subject of ``count`` RFC 2047 encoded words (700 KB; 73 s and 16.8 GB RAM in the stdlib at 50,000)."""
    words = b" ".join(b"=?utf-8?q?w%d?=" % (i % 10) for i in range(count))
    return _mail(b"Subject: " + _fold(words) + b"\r\n")


def encoded_words_everywhere(headers: int = 200, per_header: int = 40) -> bytes:
    """Many headers each holding a moderate number of encoded words: only the total is hostile."""
    words = b" ".join([b"=?utf-8?b?" + base64.b64encode("ñandú".encode()) + b"?="] * per_header)
    block = b"".join(b"X-Note-%d: %s\r\n" % (i, _fold(words)) for i in range(headers))
    return _mail(b"Subject: notes\r\n" + block)


def many_parameters(count: int = 40_000) -> bytes:
    """A Content-Type with ``count`` parameters (7 s in the stdlib)."""
    params = b";".join(b" p%d=v%d" % (i, i) for i in range(count))
    return _mail(b"Subject: params\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8;" + _fold(params, b";") + b"\r\n")


def many_received(count: int = 5000, long_line: int = 5 * 1024 * 1024) -> bytes:
    """``count`` Received headers, one of them a single line of ``long_line`` bytes."""
    received = b"".join(
        b"Received: from relay%d.example (relay%d.example [192.0.2.%d]) by mx.osds.example; Sat, 5 Dec 2026 09:00:00 +0000\r\n"
        % (i, i, i % 250) for i in range(count)
    )
    huge = b"Received: from " + b"x" * long_line + b"\r\n" if long_line else b""
    return _mail(b"Subject: relays\r\n" + huge + received)


def huge_header_line(size: int = 5 * 1024 * 1024) -> bytes:
    """One unfolded header line of ``size`` bytes."""
    return _mail(b"Subject: big\r\nX-Junk: " + b"A" * size + b"\r\n")


def huge_folded_header(size: int = 2 * 1024 * 1024) -> bytes:
    """One header of ``size`` bytes folded into ordinary 70-byte lines: only the header block size is hostile."""
    return _mail(b"Subject: big\r\nX-Junk: " + _fold(b" ".join([b"word"] * (size // 5))) + b"\r\n")


def many_headers(count: int = 20_000) -> bytes:
    """``count`` small headers."""
    return _mail(b"Subject: many\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(count)))


def many_parts(count: int = 20_000) -> bytes:
    """A multipart of ``count`` sibling parts."""
    parts = b"".join(b"--s\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i for i in range(count))
    return _mail(b"Subject: parts\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"s\"\r\n", parts + b"--s--\r\n")


def many_address_comments(count: int = 20_000) -> bytes:
    """A To header of ``count`` addresses with comments, all on long lines (stresses the address parser)."""
    addresses = b", ".join(b"(c%d) u%d@x.example" % (i, i) for i in range(count))
    return _mail(b"Subject: many recipients\r\n", head=_HEAD.replace(b"To: helpdesk@osds.example", b"To: " + _fold(addresses, b",")))


def broken_base64() -> bytes:
    """A text part whose base64 is truncated and padded wrongly, beside an attachment of garbage base64."""
    return _mail(
        b"Subject: broken base64\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"bb\"\r\n",
        b"--bb\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.b64encode("Hola, ¿podrían ayudarnos con la validación?".encode())[:-3] + b"=\r\n%%%%\r\n"
        b"--bb\r\nContent-Type: application/pdf; name=\"x.pdf\"\r\nContent-Disposition: attachment; filename=\"x.pdf\"\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK!!!not*base64===\r\nAAA\r\n--bb--\r\n",
    )


def bogus_charsets() -> bytes:
    """Unknown, absurd and lying charsets in headers and body."""
    return _mail(
        b"Subject: =?x-unknown-charset?q?caf=E9?= =?utf-8?b?////?= =?" + b"c" * 200 + b"?q?x?=\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=\"utf-7\x00\"\r\n",
        "Prière de valider nos données, merci".encode("latin-1") + b"\xff\xfe\x00\xd8\r\n",
    )


def nul_bytes() -> bytes:
    """NUL bytes in headers, in the body and in a filename."""
    return _mail(
        b"Subject: nul\x00bytes\x00\r\nX-Note: a\x00b\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"n\"\r\n",
        b"--n\r\nContent-Type: text/plain\r\n\r\nHello\x00 help\x00 please\r\n"
        b"--n\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"a\x00b.bin\"\r\n\r\n\x00\x00\x00\r\n--n--\r\n",
    )


def binary_garbage(size: int = 200_000) -> bytes:
    """Bytes that are not mail at all (deterministic)."""
    return bytes((i * 7919 + 13) % 256 for i in range(size))


def unterminated_multipart() -> bytes:
    """A multipart whose closing delimiter never comes and whose boundary parameter is missing."""
    return _mail(
        b"Subject: cut off\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative\r\n",
        b"--lostboundary123\r\nContent-Type: text/plain\r\n\r\nHello, can you help with our data?\r\n--lostboundary123\r\nContent-Type: text/html\r\n\r\n<p>He",
    )


def _fold(value: bytes, sep: bytes = b" ", width: int = 900) -> bytes:
    """Fold a long header value at ``sep`` so that no line exceeds about ``width`` bytes (RFC 5322 allows 998)."""
    out, line = [], b""
    for piece in value.split(sep):
        if line and len(line) + len(piece) + len(sep) > width:
            out.append(line + sep if sep != b" " else line)
            line = piece
        else:
            line = line + sep + piece if line else piece
    out.append(line)
    return b"\r\n ".join(out)


@dataclass(frozen=True)
class Hostile:
    """One hostile mail and what intake must make of it: a quarantine reason from ``reasons``, or ``"message"``."""

    name: str
    build: Callable[[], bytes]
    reasons: frozenset[str]


HOSTILE: tuple[Hostile, ...] = (
    Hostile("deep_multipart", deep_multipart, frozenset({"mime_too_deep"})),
    Hostile("deep_message_rfc822", deep_message_rfc822, frozenset({"mime_too_deep"})),
    Hostile("nested_comments_from", nested_comments_from, frozenset({"comments_too_deep"})),
    Hostile("encoded_words_subject", encoded_words_subject, frozenset({"too_many_encoded_words"})),
    Hostile("encoded_words_everywhere", encoded_words_everywhere, frozenset({"too_many_encoded_words"})),
    Hostile("many_parameters", many_parameters, frozenset({"too_many_parameters"})),
    Hostile("many_received", many_received, frozenset({"line_too_long", "header_too_large", "too_many_headers"})),
    Hostile("huge_header_line", huge_header_line, frozenset({"line_too_long"})),
    Hostile("huge_folded_header", huge_folded_header, frozenset({"header_too_large"})),
    Hostile("many_headers", many_headers, frozenset({"too_many_headers"})),
    Hostile("many_parts", many_parts, frozenset({"too_many_parts"})),
    Hostile("many_address_comments", many_address_comments, frozenset({"too_many_addresses"})),
    Hostile("broken_base64", broken_base64, frozenset({"message"})),
    Hostile("bogus_charsets", bogus_charsets, frozenset({"message"})),
    Hostile("nul_bytes", nul_bytes, frozenset({"message"})),
    Hostile("binary_garbage", binary_garbage, frozenset({"not_an_email", "line_too_long", "no_sender"})),
    Hostile("unterminated_multipart", unterminated_multipart, frozenset({"message"})),
)
HOSTILE_BY_NAME = {h.name: h for h in HOSTILE}


# -- parse functions that misbehave, for the parse pool's tests (importable by name in a helper process) ---------------
# Each behaves like intake.mime.parse_email, except on a mail whose Subject holds its marker.
HANG, ALLOCATE, SEGFAULT, EXIT, RAISE = (b"Subject: HANG", b"Subject: ALLOCATE", b"Subject: SEGFAULT", b"Subject: EXIT", b"Subject: RAISE")


def misbehaving_parse(raw: bytes, **kwargs):  # noqa: ANN003, ANN201 - parse_email's signature
    """Hang, allocate without end, crash in C, exit, or raise an unexpected error when the Subject says so."""
    from intake.mime import parse_email  # noqa: PLC0415 - keep this module light for its other users

    if HANG in raw:
        while True:  # a parser stuck in a loop: CPU-bound, as parser bugs are
            time.monotonic()
    if ALLOCATE in raw:
        # bytes(n) is calloc'd, so the pages are mapped but not touched: the address-space cap (RLIMIT_AS) is met
        # at once rather than after zeroing half a gigabyte, which on a loaded 2-core CI took longer than the
        # pool's 3 s deadline and was reported as parse_timeout
        hoard = []
        while True:
            hoard.append(bytes(16 * 1024 * 1024))
    if SEGFAULT in raw:
        os.kill(os.getpid(), signal.SIGSEGV)
    if EXIT in raw:
        os._exit(3)
    if RAISE in raw:
        raise KeyError("a parser bug")
    return parse_email(raw, **kwargs)


def marked(marker: bytes) -> bytes:
    """An ordinary enquiry whose Subject carries ``marker`` (one of the constants above)."""
    return _mail(marker + b" please\r\n", message_id=b"<" + marker.split(b": ")[1].lower() + b"@attacker.example>")


def broken_parse(raw: bytes, **kwargs):  # noqa: ANN003, ANN201
    """A parser that cannot parse anything (a broken deployment): helpers using it never become ready."""
    raise ImportError("the parser is broken")
