"""The words both sides of the documentation search are made of: stop words out, Snowball-stemmed, folded.

    words("Publishing the suppliers")       → ['publishing', 'suppliers']
    stems(["publishing", "suppliers"], "english") → ['publish', 'supplier']
    tokens("Las licitaciones", "es")        → ['licit', 'licitaciones']

A word is stemmed in the language of the text it comes from (Snowball through
PyStemmer: en, es, fr, pt; any other or unknown language as English, the
fallback), before its accents are folded, as Snowball's rules expect them;
a word that stemming changed is kept as well (``unstemmed``).
The LSA ranker uses ``content_words``: folded words, not stemmed (its
character n-grams already match across inflections).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Sequence

import Stemmer

from classifiers.text import fold

MAX_QUERY_CHARS = 20_000  # an enquiry's first 20k characters say what it is about
MAX_TEXT_CHARS = MAX_QUERY_CHARS * 10  # a page's words beyond these add nothing but time
FALLBACK_STEMMER = "english"
STEMMERS = {"en": "english", "es": "spanish", "fr": "french", "pt": "portuguese"}

_WORD = re.compile(r"[^\W_]{2,}", re.UNICODE)
# Function words of en/es/fr/pt and e-mail courtesies, folded: they say nothing about which page helps.
STOPWORDS = frozenset(
    """
    a about after all also am an and any are as at be been before being but by can could did do does
    for from had has have how if in into is it its just may me more most my no not of on one or other
    our out should so some such than that the their them then there these they this those to too up us
    very was we were what when where which who why will with would you your i im ive hi hello dear
    thanks thank regards best kind many please team helpdesk osds
    el la los las un una unos unas de del al y o u en con por para que se su sus es son como pero mas
    muy ya le les lo nos nuestro nuestra nuestros nuestras este esta estos estas ese esa hay ser estar
    tenemos hola gracias saludos estimados estimado buenos dias cordiales atentamente muchas quisiera
    le les du des et ou dans avec pour par sur ce cette ces qui est sont nous vous notre nos votre vos
    pas ne plus ou au aux il elle ils elles bonjour merci cordialement madame monsieur bien
    o os as um uma uns umas do da dos das no na nos nas com em por para que se seu sua seus suas e sao
    como mas mais ja ao aos isso esse essa este esta nosso nossa nossos nossas ola obrigado obrigada
    atenciosamente prezados prezado bom dia
    """.split()
)


def stemmer_name(language: str | None) -> str:
    """The Snowball algorithm for a language code: its own for en/es/fr/pt, else English."""
    return STEMMERS.get(language or "", FALLBACK_STEMMER)


def _folded(word: str) -> str:
    return word if word.isascii() else fold(word)


def words(text: str) -> list[str]:
    """The text's words in lower case with their accents, stop words out, in order."""
    # Composed first: a decomposed accent (macOS file names, some editors) would split its word.
    found = _WORD.findall(unicodedata.normalize("NFC", text[:MAX_TEXT_CHARS].casefold()))
    return [w for w in found if _folded(w) not in STOPWORDS]


# A PyStemmer stemmer keeps state while it stems, so it must not be shared by threads
# (searches run concurrently in the worker): each thread gets its own.
_local = threading.local()


def _stemmer(name: str) -> Stemmer.Stemmer:
    stemmers: dict[str, Stemmer.Stemmer] = _local.__dict__.setdefault("stemmers", {})
    if name not in stemmers:
        stemmers[name] = Stemmer.Stemmer(name)
    return stemmers[name]


def stems(found: Sequence[str], stemmer: str) -> list[str]:
    """``words`` stemmed by a Snowball algorithm (a ``stemmer_name``), then folded: 'licitações' → 'licit'."""
    return [_folded(s) for s in _stemmer(stemmer).stemWords(found)]


def folded(found: Sequence[str]) -> list[str]:
    """``words`` without their accents: 'licitações' → 'licitacoes'."""
    return [_folded(w) for w in found]


def unstemmed(folded_words: Sequence[str], stemmed: Sequence[str]) -> list[str]:
    """The ``folded`` words that stemming changed into ``stemmed`` ('suppliers' beside 'supplier').

    Indexed beside the stems, as Lucene's KeywordRepeatFilter does: a page with the
    enquirer's very word ranks above one that only shares its stem.
    """
    return [word for word, stem in zip(folded_words, stemmed, strict=True) if word != stem]


def tokens(text: str, language: str | None = None) -> list[str]:
    """What the BM25 ranker indexes of a text in ``language``: the ``stems`` of its ``words``, then ``unstemmed``."""
    found = words(text)
    stemmed = stems(found, stemmer_name(language))
    return stemmed + unstemmed(folded(found), stemmed)


def content_words(text: str) -> str:
    """Folded words without stop words: the LSA ranker's n-grams come from words that carry meaning."""
    return " ".join(folded(words(text)))
