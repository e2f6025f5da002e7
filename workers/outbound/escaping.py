"""One escaping rule per medium, for every text that came from outside (subjects, names, message text).

- ``slack``: Slack mrkdwn — ``&``, ``<`` and ``>`` become entities, so ``<!channel>``,
  ``<@U123>`` and ``<https://evil|Re-authenticate>`` show as text, never as a ping or a
  disguised link; control characters are removed.
- ``header``: one line of an e-mail header — CR, LF and every other control character
  become a space (no header injection, no folded surprise), bounded in length.
- ``body``: the text of an e-mail body — line endings normalised, control characters removed.
- ``terminal``: what the command line prints — escape sequences (clear screen, hyperlinks,
  title changes), other control characters and bidirectional overrides removed.
- ``first_name``: a display name fit to greet someone with — one word of letters, or nothing
  ("Dear WIN-$500-at-https://evil.example/claim," is never written).
"""

from __future__ import annotations

import re
import unicodedata

# C0 and C1 controls except TAB and LF, DEL, and the Unicode bidirectional controls and isolates.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# A whole ANSI/VT escape sequence (CSI … final byte, OSC … BEL/ST, or a two-byte escape), removed before the controls.
_ESCAPES = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-Z\\-_])|\x9b[0-?]*[ -/]*[@-~]|\x9d[^\x07\x9c]*[\x07\x9c]?")
_SPACE_RUNS = re.compile(r"[ \t]{2,}")
MAX_HEADER_CHARS = 900
MAX_FIRST_NAME_CHARS = 30


def _strip(text: str) -> str:
    return _CONTROLS.sub("", _ESCAPES.sub("", text))


def slack(text: str | None) -> str:
    """Untrusted text inside Slack mrkdwn: shown as written, never as markup."""
    return _strip(text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def header(text: str | None, limit: int = MAX_HEADER_CHARS) -> str:
    """Untrusted text as one e-mail header value: a single line without control characters."""
    flat = _CONTROLS.sub(" ", _ESCAPES.sub("", (text or "").replace("\r", " ").replace("\n", " ").replace("\t", " ")))
    return _SPACE_RUNS.sub(" ", flat).strip()[:limit]


def body(text: str | None) -> str:
    """Untrusted text inside a plain-text e-mail body: LF line endings, no control characters."""
    return _strip((text or "").replace("\r\n", "\n").replace("\r", "\n"))


def terminal(text: str | None) -> str:
    """Untrusted text for a terminal: no escape sequences, no control characters but newline and tab."""
    return _strip(text or "")


def terminal_line(text: str | None) -> str:
    """Untrusted text for one cell or line of a terminal table: as ``terminal``, on one line."""
    return _SPACE_RUNS.sub(" ", terminal(text).replace("\n", " ").replace("\t", " ")).strip()


def first_name(display_name: str | None) -> str:
    """The first word of a display name if it is only letters (and inner hyphens or apostrophes); else ""."""
    words = header(display_name).split()
    if not words or "@" in words[0]:
        return ""
    word = unicodedata.normalize("NFC", words[0].strip(",;:"))
    if not 0 < len(word) <= MAX_FIRST_NAME_CHARS:
        return ""
    parts = re.split(r"[-'’]", word)
    if not all(part and all(unicodedata.category(ch).startswith("L") for ch in part) for part in parts):
        return ""
    return word
