"""Language of a message, restricted to the languages the desk works in (lingua)."""

from __future__ import annotations

import ctypes
import threading
from functools import cache

from lingua import ConfidenceValue, IsoCode639_1, Language, LanguageDetector, LanguageDetectorBuilder

from classifiers.result import Label

MAX_CHARS = 200  # measured: full accuracy on the demo sample; 0.17 ms (300 chars: 0.24 ms, 600: 0.39 ms)
MIN_CHARS = 12
FULL_MODELS_BELOW = 120  # lingua reads a text of fewer letters with all five n-gram lengths, a longer one with trigrams alone
# Texts that load one set of models for every language: plain ASCII letters, which no rule of lingua's decides or filters.
_LOADS_TRIGRAMS = "the models of every language are read before the first enquiry of this length is classified " * 2
_LOADS_ALL_MODELS = "models of every language"  # short, with words of five letters: every n-gram length


class SharedDetector:
    """One lingua detector per process and set of languages (lingua's detectors are thread-safe), shared by every classifier.

    Every model (not lingua's low-accuracy mode): that mode builds in 0.02 s and 10 MB instead of 0.38 s and 148 MB, and
    is right on 99.5% of the labelled enquiries against 99.8%, but it takes short texts — a subject alone, a tweet — for
    the wrong language ("validation report" → fr 0.54, where every model says en), and short texts are common on X and in attachment-only mail.

    The models load when a text first needs them, not when the detector is built: lingua reads a text of 120
    letters or more with its trigram models alone (in either mode), and only a shorter one with all five n-gram
    lengths. A worker starts without the 0.4 s of loading — which holds the GIL — and the first enquiry of usual
    length loads the trigrams (0.02–0.07 s, 7 MB for en/es/fr/pt); the first short text loads the rest (0.4 s,
    87 MB resident), once, as the detector would have at start. The models, and so the answers, are the same
    (measured on the 3,454 texts of classifiers/data, whole and cut short: the same language and the same
    confidence to 14 decimals, lingua's own run-to-run variation).

    Each set of models is loaded by one thread, for every language at once, and the memory its loading used is then
    given back. lingua builds each model from decompressed JSON through a temporary map of fractions (≈ 43 MB more
    while the five-gram models load), and checks for a loaded model without a lock: threads that met their first
    short text together each built the same models, in malloc arenas of their own, and the garbage stayed in the
    worker's resident set for good (a worker draining the benchmark's 1,000 messages ended at 286–294 MB; with this,
    245–271 MB). The answers do not change (7,207 texts of classifiers/data and the shared e-mail corpus, whole and
    cut short: the same language and confidence). Once both sets are loaded, no lock is taken.
    """

    def __init__(self, detector: LanguageDetector) -> None:
        self._detector = detector
        self._loaded: set[bool] = set()  # which sets of models are in memory: all five lengths (True), trigrams (False)
        self._loading = threading.Lock()

    def confidence_values(self, text: str) -> list[ConfidenceValue]:
        if len(self._loaded) < 2:
            self._load(all_models=sum(map(str.isalpha, text)) < FULL_MODELS_BELOW)
        return self._detector.compute_language_confidence_values(text)

    def _load(self, *, all_models: bool) -> None:
        if all_models in self._loaded:
            return
        with self._loading:
            if all_models in self._loaded:  # another thread loaded them while this one waited
                return
            self._detector.compute_language_confidence_values(_LOADS_ALL_MODELS if all_models else _LOADS_TRIGRAMS)
            release_free_memory()
            self._loaded.update((True, False) if all_models else (False,))


@cache
def shared_detector(codes: tuple[str, ...]) -> SharedDetector:
    languages = [Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper())) for code in codes]
    return SharedDetector(LanguageDetectorBuilder.from_languages(*languages).build())


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
        values = self._detector.confidence_values(sample)
        if not values:
            return Label(self.fallback, 0.0, (f"no language recognised; assumed {self.fallback}",))
        best = values[0]
        code = best.language.iso_code_639_1.name.lower()
        return Label(code, round(best.value, 3), (f"lingua: {code} {best.value:.2f}",))
