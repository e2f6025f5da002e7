"""Bounds checked on the raw bytes of an e-mail before the stdlib ``email`` package parses any of it.

The stdlib parser recurses once per MIME level and once per nested comment
(1,000 levels raise RecursionError), and some of its header parsers are
quadratic: 50,000 RFC 2047 encoded words in a Subject took 73 s and 16.8 GB,
40,000 Content-Type parameters 7 s, a To of 8,000 addresses 2 s. ``prescan``
walks the raw bytes once, the way ``email.feedparser`` will — header blocks end
at the first line that is not a header, a part ends at a delimiter line of any
open boundary — and rejects what exceeds a limit, naming the figure and the
limit, before any of that work starts. It reads every header block (the
message's, each part's, each forwarded message's) and only the delimiter lines
of bodies, so its cost is linear in the size of the mail and bounded by the
limits themselves.

It is the cheap first line of defence; ``intake.parse_pool`` bounds the time
and memory of whatever passes it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

from intake.errors import RejectedInput

if TYPE_CHECKING:
    from config.settings import Settings

# A line the feedparser takes as part of a header block (email.feedparser.headerRE).
_HEADER_LINE = re.compile(rb"From |[\x21-\x39\x3b-\x7e]*:|[\t ]")
_LINE_END = re.compile(rb"\r\n|\r|\n")
_BLANK_LINE = re.compile(rb"(?:\r\n|\r|\n)(?:\r\n|\r|\n)")
# What follows "--boundary" on a delimiter line (email.feedparser's boundaryre).
_DELIMITER_TAIL = re.compile(rb"(--)?[ \t]*(?:\r\n|\r|\n|\Z)")
_MEDIA_TYPE = re.compile(rb"\s*([!#-'*+.0-9A-Za-z^-~-]+)\s*/\s*([!#-'*+.0-9A-Za-z^-~-]+)")
_BOUNDARY = re.compile(rb"""[;\s]boundary\s*=\s*(?:"((?:[^"\\\r\n]|\\.){1,200})"|([^\s;"]{1,200}))""", re.IGNORECASE)
_SNIFFED_BOUNDARY = re.compile(rb"^--([0-9A-Za-z'()+_,./:=?-]{6,70})\r?$", re.MULTILINE)  # intake.mime's repair
_QUOTED_PAIR = re.compile(rb"\\.", re.DOTALL)
_PARENS = re.compile(rb"[()]")
# Headers that policy.default parses with email._header_value_parser (comments, parameters, address lists).
_STRUCTURED = frozenset(
    b"from sender reply-to to cc bcc resent-from resent-sender resent-to resent-cc resent-bcc message-id "
    b"content-type content-disposition content-transfer-encoding mime-version date resent-date".split()
)
_PARAMETERIZED = frozenset({b"content-type", b"content-disposition"})
_ADDRESS_LISTS = frozenset(b"from sender reply-to to cc bcc resent-from resent-sender resent-to resent-cc resent-bcc delivered-to".split())


@dataclass(frozen=True)
class PrescanLimits:
    """What one raw e-mail may hold. The defaults pass every real mail of the test corpora with room to spare."""

    max_raw_bytes: int = 30 * 1024 * 1024
    max_header_bytes: int = 512 * 1024  # one header block: the message's, a part's or a forwarded message's
    max_headers: int = 2000  # fields in one header block
    max_line_bytes: int = 64 * 1024  # one physical line of a header block (RFC 5322 says 998)
    max_mime_depth: int = 30  # levels of multipart / message nesting below the message itself
    max_mime_parts: int = 1000  # every part and forwarded message, at any depth
    max_header_parameters: int = 100  # parameters of one Content-Type or Content-Disposition
    max_addresses: int = 1000  # addresses in one address header (the stdlib's address parser is quadratic)
    max_encoded_words: int = 300  # RFC 2047 encoded words in one header
    max_encoded_words_total: int = 3000  # … in all headers of the message
    max_comment_depth: int = 20  # nesting of (comments) in one structured header

    @classmethod
    def from_settings(cls, settings: "Settings") -> "PrescanLimits":
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls)})


@dataclass
class Figures:
    """The largest figure of each kind that a scan saw (what ``measure`` returns)."""

    raw_bytes: int = 0
    header_bytes: int = 0
    headers: int = 0
    line_bytes: int = 0
    mime_depth: int = 0
    mime_parts: int = 0
    header_parameters: int = 0
    addresses: int = 0
    encoded_words: int = 0
    encoded_words_total: int = 0
    comment_depth: int = 0


def prescan(raw: bytes, limits: PrescanLimits = PrescanLimits()) -> None:
    """Raise RejectedInput when ``raw`` exceeds one of ``limits``; otherwise return having parsed nothing."""
    _Scan(raw, limits).run()


def measure(raw: bytes) -> Figures:
    """Every figure ``prescan`` checks, for choosing limits (no limit applies)."""
    scan = _Scan(raw, None)
    scan.run()
    return scan.figures


_UNLIMITED = PrescanLimits(**{f.name: 2**62 for f in fields(PrescanLimits)})


@dataclass
class _Open:
    """A multipart whose closing delimiter has not been seen: where its next delimiter line is (-1: none before ``limit``)."""

    boundary: bytes
    depth: int
    limit: int
    digest: bool
    next: int = -1
    next_end: int = -1
    closing: bool = False


class _Scan:
    def __init__(self, raw: bytes, limits: PrescanLimits | None) -> None:
        self.raw = raw
        self.limits = limits or _UNLIMITED
        self.checking = limits is not None
        self.figures = Figures(raw_bytes=len(raw))
        self.stack: list[_Open] = []
        self.steps = 0

    def _over(self, figure: str, value: int, reason: str, detail: str) -> None:
        """Record ``value``; reject when it exceeds the limit of the same name."""
        if value > getattr(self.figures, figure):
            setattr(self.figures, figure, value)
        limit = getattr(self.limits, f"max_{figure}")
        if value > limit:
            raise RejectedInput(reason, f"{detail} {value:,} exceeds the limit of {limit:,}")

    def run(self) -> None:
        self._over("raw_bytes", len(self.raw), "too_large", "raw size in bytes")
        self._entity(0, 0, len(self.raw), digest_part=False)
        while self.stack:
            index = next((i for i in range(len(self.stack) - 1, -1, -1) if self.stack[i].next >= 0), -1)
            del self.stack[index + 1 :]  # inner multiparts end at an outer delimiter (or at the end of the input)
            if index < 0:
                return
            open_ = self.stack[index]
            start, closing = open_.next_end, open_.closing
            if closing:
                self.stack.pop()
                continue
            self._find_delimiter(open_, start)
            self._over("mime_parts", self.figures.mime_parts + 1, "too_many_parts", "MIME parts")
            self._entity(start, open_.depth + 1, open_.next if open_.next >= 0 else open_.limit, digest_part=open_.digest)

    # -- one entity: its header block, then what its content type makes of the body ---------------------
    def _entity(self, pos: int, depth: int, limit: int, *, digest_part: bool) -> None:
        while True:  # a message/* part holds a message: read its header block too, one level deeper
            self._over("mime_depth", depth, "mime_too_deep", "MIME nesting depth")
            content_type, body = self._header_block(pos, limit)
            maintype, subtype, boundary = _content_type(content_type)
            if maintype is None and digest_part:
                maintype, subtype = b"message", b"rfc822"
            if maintype == b"multipart":
                if boundary is None and depth == 0:
                    sniffed = _SNIFFED_BOUNDARY.search(self.raw, body, limit)
                    boundary = sniffed.group(1) if sniffed else None
                if boundary is not None:
                    self._open(boundary, depth, body, limit, digest=subtype == b"digest")
                return
            if maintype == b"message" and subtype == b"delivery-status":
                self._status_blocks(body, limit)
                return
            if maintype != b"message" or body >= limit:
                return
            pos, depth, digest_part = body, depth + 1, False
            self._over("mime_parts", self.figures.mime_parts + 1, "too_many_parts", "MIME parts")

    def _status_blocks(self, pos: int, limit: int) -> None:
        """message/delivery-status: the feedparser reads its body as a series of header blocks."""
        while pos < limit:
            _, end = self._header_block(pos, limit)
            if end == pos:  # not a header line: the rest is read as text
                return
            self._over("mime_parts", self.figures.mime_parts + 1, "too_many_parts", "MIME parts")
            while end < limit and _LINE_END.match(self.raw, end):
                end = _LINE_END.match(self.raw, end).end()
            pos = end

    # -- multipart structure -------------------------------------------------------------------------------
    def _open(self, boundary: bytes, depth: int, body: int, limit: int, *, digest: bool) -> None:
        open_ = _Open(boundary=boundary.rstrip(), depth=depth, limit=limit, digest=digest)
        self._find_delimiter(open_, body)
        self.stack.append(open_)

    def _find_delimiter(self, open_: _Open, start: int) -> None:
        """The next delimiter line of ``open_`` at or after ``start``, before its limit (the next outer delimiter)."""
        raw, separator = self.raw, b"--" + open_.boundary
        position = start
        while True:
            found = raw.find(separator, position, open_.limit)
            if found < 0:
                open_.next = -1
                return
            self.steps += 1
            if self.checking and self.steps > 20 * self.limits.max_mime_parts + 10_000:
                raise RejectedInput("mime_too_complex", f"more than {self.steps - 1:,} boundary-like lines")
            tail = _DELIMITER_TAIL.match(raw, found + len(separator))
            if tail is not None and (found == 0 or raw[found - 1] in b"\r\n"):
                open_.next, open_.next_end, open_.closing = found, tail.end(), tail.group(1) is not None
                return
            position = found + 1

    # -- header blocks ---------------------------------------------------------------------------------------
    def _header_block(self, pos: int, limit: int) -> tuple[bytes | None, int]:
        """Check the header block starting at ``pos``; return (its first Content-Type value, where its body starts)."""
        raw, limits = self.raw, self.limits
        start, count, field, content_type = pos, 0, [], None
        while pos < limit:
            window = min(limit, pos + limits.max_line_bytes + 2)
            match = _LINE_END.search(raw, pos, window)
            line_end, after = (match.start(), match.end()) if match else (window, window)
            if line_end == pos:
                pos = after  # the blank line that separates headers from the body
                break
            if not _HEADER_LINE.match(raw, pos, line_end):
                break  # the body starts without a blank line (the feedparser notes a defect)
            if match is None and window < limit:
                self._over("line_bytes", _line_length(raw, pos, limit), "line_too_long", "header line length in bytes")
            self._over("line_bytes", line_end - pos, "line_too_long", "header line length in bytes")
            if after - start > limits.max_header_bytes:
                self._over("header_bytes", _block_length(raw, start, limit), "header_too_large", "header block size in bytes")
            if raw[pos] not in b" \t" and field:
                content_type = self._field(b"".join(field), content_type)
                field = []
            if raw[pos] not in b" \t" or field:
                if not field:
                    count += 1
                    self._over("headers", count, "too_many_headers", "header fields in one block")
                field.append(raw[pos:line_end])
            pos = after
        if field:
            content_type = self._field(b"".join(field), content_type)
        self._over("header_bytes", pos - start, "header_too_large", "header block size in bytes")
        return content_type, pos

    def _field(self, field: bytes, content_type: bytes | None) -> bytes | None:
        name, _, value = field.partition(b":")
        name = name.strip().lower()
        words = value.count(b"=?")
        if words:
            self._over("encoded_words", words, "too_many_encoded_words", f"encoded words in {_show(name)}")
            self._over("encoded_words_total", self.figures.encoded_words_total + words, "too_many_encoded_words",
                       "encoded words in all headers")
        if name in _PARAMETERIZED:
            self._over("header_parameters", value.count(b";"), "too_many_parameters", f"parameters of {_show(name)}")
        if name in _ADDRESS_LISTS:
            self._over("addresses", value.count(b"@"), "too_many_addresses", f"addresses in {_show(name)}")
        if name in _STRUCTURED and b"(" in value:
            self._over("comment_depth", _comment_depth(value), "comments_too_deep", f"depth of nested comments in {_show(name)}")
        if name == b"content-type" and content_type is None:
            return value
        return content_type


def _content_type(value: bytes | None) -> tuple[bytes | None, bytes | None, bytes | None]:
    """(maintype, subtype, boundary) of a raw Content-Type value, lower-cased; Nones where it does not say."""
    if value is None:
        return None, None, None
    media = _MEDIA_TYPE.match(value)
    if media is None:
        return None, None, None
    boundary = _BOUNDARY.search(b";" + value[media.end() :])
    found = None
    if boundary is not None:
        found = boundary.group(1) if boundary.group(1) is not None else boundary.group(2)
        found = _QUOTED_PAIR.sub(lambda m: m.group(0)[1:], found) or None
    return media.group(1).lower(), media.group(2).lower(), found


def _comment_depth(value: bytes) -> int:
    depth = deepest = 0
    for paren in _PARENS.finditer(_QUOTED_PAIR.sub(b"", value)):
        depth = depth + 1 if paren.group() == b"(" else max(0, depth - 1)
        deepest = max(deepest, depth)
    return deepest


def _line_length(raw: bytes, pos: int, limit: int) -> int:
    match = _LINE_END.search(raw, pos, limit)
    return (match.start() if match else limit) - pos


def _block_length(raw: bytes, start: int, limit: int) -> int:
    match = _BLANK_LINE.search(raw, start, limit)
    return (match.end() if match else limit) - start


def _show(name: bytes) -> str:
    return name[:60].decode("ascii", "replace") or "a header"
