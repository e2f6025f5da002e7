"""The new part of a reply, apart from the quoted history and the signature.

``mail-parser-reply`` finds the quote headers of the mail clients it knows in
English, Spanish, French, German, Italian and more; a few patterns of our own
cover what it misses: Portuguese ("Em … escreveu:", "Enviada em:",
"Mensagem original"), quote headers folded over several lines, "Sent from my
iPhone" footers and blocks of ``>`` lines. The earliest cut wins. A
bottom-posted reply (the quote first, the answer under it) keeps the lines
that are not quoted. The full original text is always kept elsewhere; this is
what classification and staff read first.
"""

from __future__ import annotations

import re
import threading
from re import Pattern

from mailparser_reply import EmailReplyParser
from mailparser_reply.parser import EmailMessage

PARSER_LANGUAGES = ["en", "es", "fr", "de", "it", "nl"]

# Quote headers and footers the library misses.
_WROTE = (r"wrote|a écrit|escribió|escreveu|schrieb|ha scritto|schreef|skrev|kirjoitti|napsal|написал|написала|"
          r"pisze|napisał|yazdı|έγραψε")
_HEADER_PATTERNS = [
    # "On <date>, <name> wrote:" — the verb ends the line; the header may be folded over lines above (see _wrote_cut)
    rf"^[^\n]{{0,300}}\b({_WROTE})\b[^\n]{{0,40}}:?\s*-*\s*$",
    # "-----Original Message-----", "---- Forwarded message ----" and the like, in any language
    r"^\s*-{2,}\s*[^\n-]{3,50}?\s*-{2,}\s*$",
    # a line of dashes or underscores above a "From:"-style line
    r"^\s*[-_]{4,}\s*\n\s*\*?\w{2,12}\s*:",
    # an Outlook header block: a From-line followed by a Sent/Date-line
    r"^\*?(From|De|Von|Fra|Da|Från|Van|От|Od)\s*:[^\n]*\n([^\n]*\n)?\*{0,2}(Sent|Enviada em|Enviado el|Enviado|Envoyé|Gesendet|"
    r"Sendt|Dato|Date|Datum|Data|Skickat|Verzonden|Отправлено|Wysłano)\s*:",
    r"^_{20,}\s*$",
    # mobile footers
    r"^(Sent from|Get Outlook for|Enviado desde|Enviado do|Enviado de|Envoyé de|Envoyé à partir de|Von meinem|Inviato da)\b[^\n]{0,80}$",
]
_HEADER_RE = re.compile("|".join(f"(?:{p})" for p in _HEADER_PATTERNS), re.MULTILINE | re.IGNORECASE)
_WROTE_LINE_RE = re.compile(_HEADER_PATTERNS[0], re.MULTILINE | re.IGNORECASE)
_QUOTE_BLOCK_RE = re.compile(r"^>[^\n]*\n(>[^\n]*(\n|$))+", re.MULTILINE)
_SIGNATURE_RE = re.compile(r"^-- ?$", re.MULTILINE)
_HEADERISH = re.compile(r"\d|@|<|,")


class _Reading(EmailMessage):
    """The library's message, with its three patterns built once per set of languages, not once per message.

    ``EmailMessage`` joins and compiles its header, signature and disclaimer patterns anew for each message (about a
    tenth of a mail's parse). They depend only on the languages and options, which are the same for every message.
    """

    _built: dict[tuple, Pattern] = {}
    _building = threading.Lock()

    def _pattern(self, kind: str, build: property) -> Pattern:
        key = (kind, tuple(self.languages), self.default_language, self.keep_hyphen_lists)
        pattern = self._built.get(key)
        if pattern is None:
            with self._building:
                pattern = self._built.setdefault(key, build.fget(self))  # type: ignore[misc]
        return pattern

    @property
    def HEADER_REGEX(self) -> Pattern:  # noqa: N802 - the library's name
        return self._pattern("header", EmailMessage.HEADER_REGEX)

    @property
    def SIGNATURE_REGEX(self) -> Pattern:  # noqa: N802
        return self._pattern("signature", EmailMessage.SIGNATURE_REGEX)

    @property
    def DISCLAIMERS_REGEX(self) -> Pattern:  # noqa: N802
        return self._pattern("disclaimers", EmailMessage.DISCLAIMERS_REGEX)


class ReplySplitter:
    """Splits a body into (new text, rest). Thread-safe: the parser keeps no state between calls."""

    def __init__(self, languages: tuple[str, ...] = ()) -> None:
        wanted = [lang for lang in (*PARSER_LANGUAGES, *languages) if lang != "pt"]
        self.parser = EmailReplyParser(languages=list(dict.fromkeys(wanted)))

    def new_text(self, text: str) -> str:
        """The part of ``text`` its author wrote for this message: no quoted history, no signature."""
        body = text.replace("\r\n", "\n").strip()
        if not body:
            return ""
        cut = _earliest_cut(body)
        above = body[:cut].strip() if cut is not None else body
        if not re.search(r"\w", above):
            return _unquoted(body)  # bottom-posted: the new text is what is not quoted
        try:
            # keep_hyphen_lists: "- item" lines are questions people list, not signatures
            latest = _Reading(text=above, languages=self.parser.languages, keep_hyphen_lists=True).read().replies
            reply = latest[0].body if latest else above
        except Exception:  # noqa: BLE001 - a third-party regex engine on hostile input must not fail intake
            reply = above
        reply = _strip_sign_off(_strip_signature(reply or above))
        return reply if re.search(r"\w", reply) else above


def _earliest_cut(body: str) -> int | None:
    cuts = []
    match = _HEADER_RE.search(body)
    if match is not None:
        cuts.append(_wrote_cut(body, match.start()) if _WROTE_LINE_RE.match(body, match.start()) else match.start())
    block = _QUOTE_BLOCK_RE.search(body)
    if block is not None:
        cuts.append(block.start())
    return min(cuts) if cuts else None


def _wrote_cut(body: str, start: int) -> int:
    """Move a cut at a "… wrote:" line up over the lines its header was folded from (dates, names, addresses)."""
    for _ in range(2):
        previous_end = body.rfind("\n", 0, max(0, start - 1))
        line = body[previous_end + 1 : start].strip()
        if not line or not _HEADERISH.search(line) or len(line) > 120:
            break
        start = previous_end + 1
    return start


def _unquoted(body: str) -> str:
    lines = [line for line in body.splitlines() if not line.lstrip().startswith(">")]
    text = "\n".join(lines)
    match = _HEADER_RE.search(text)
    while match is not None and match.start() == 0:  # drop a leading quote header
        text = text[match.end():].lstrip()
        match = _HEADER_RE.search(text)
    return _strip_signature(text.strip())


_SIGN_OFF = re.compile(
    r"^(best|kind|warm|many thanks and)?\s*(regards|wishes)[,.!]?$|^(many )?thanks( again| a lot| in advance)?[,.!]?$|^thank you[,.!]?$|"
    r"^cheers[,.!]?$|^sincerely[,.!]?$|^(saludos|un saludo)( cordiales)?[,.!]?$|^atentamente[,.!]?$|^cordialmente[,.!]?$|"
    r"^(muchas )?gracias[,.!]?$|^cordialement[,.!]?$|^bien (cordialement|à vous)[,.!]?$|^merci( beaucoup| d'avance)?[,.!]?$|"
    r"^atenciosamente[,.!]?$|^(um )?abraço[s]?[,.!]?$|^obrigad[oa]s?[,.!]?$|^(muito )?obrigad[oa][,.!]?$|^att\.?[,]?$",
    re.IGNORECASE,
)
SIGN_OFF_MAX_TAIL = 8


def _strip_sign_off(text: str) -> str:
    """Cut a closing like "Atenciosamente," and the few short signature lines under it."""
    lines = text.splitlines()
    for i in range(len(lines) - 1, 0, -1):
        if _SIGN_OFF.match(lines[i].strip()):
            tail = [line for line in lines[i + 1 :] if line.strip()]
            if len(tail) <= SIGN_OFF_MAX_TAIL and all(len(line) <= 100 for line in tail):
                return "\n".join(lines[:i]).strip()
            break
    return text


_DASH_NAME = re.compile(r"\n\s*-{1,2}[^\s-][^\n]{0,40}\s*$")  # "-Ana" closing a message; "- item" is a list


def _strip_signature(text: str) -> str:
    match = _SIGNATURE_RE.search(text)
    text = text[: match.start()].strip() if match is not None and match.start() > 0 else text.strip()
    return _DASH_NAME.sub("", text).strip()
