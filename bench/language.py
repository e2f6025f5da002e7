"""Benchmark: the language of short texts — the desk's detector beside lingua's full models, on texts we did not write.

    python bench/language.py [--long] [--catalogs WHEEL_OR_FOLDER ...]

Every text here is between 12 characters and 120 letters — a subject alone, a tweet, an attachment-only mail —
or, with ``--long``, an enquiry of usual length: 120 letters or more in the 200 characters the desk reads. Each is
read by:

- the desk's detector (``classifiers/language.py``: fastText's identifier weighed with lingua's trigrams for a short
  text, fastText's ten most likely languages for a long one — lingua's trigrams when none of them is the desk's);
- lingua with every model (1- to 5-grams: the detector before it, 80 MB more in a worker);
- lingua's trigram models alone, and fastText's identifier alone (both limited to the desk's languages).

Texts:

- *real enquiries*: subjects and openings (first 5, 10 and 15 words) of ``classifiers/data/real/enquiries.jsonl``
  (people's own questions on public trackers; mostly English);
- *written for this project*: the same of ``classifiers/data/examples-*.jsonl`` (labelled, four languages);
- with ``--catalogs``: human translations from gettext catalogs (``*/LC_MESSAGES/*.mo``) in wheels or folders — the
  English source and its es/fr/pt translation, each a labelled text. For example:
  ``pip download --no-deps -d /tmp/po django django-helpdesk django-allauth sphinx wagtail djangorestframework``
  then ``--catalogs /tmp/po/*.whl``. The interface strings of six projects, none of them written for this desk.
  Offline, Debian's own catalogs serve: ``--catalogs /usr/share/locale``.

The speeds printed are of a tight loop over the texts, each detector's models hot in the CPU's caches. In the worker,
between other work, fastText's identifier was measured at 200 µs a 200-character text (33 µs in a loop) and lingua's
trigrams at 145 µs (110–140 µs in a loop).

"exact" is the right language; "same team" whether the default routing (``config/routing.yaml``) would send the text
to the team a right answer would (its rules pick out es and pt).
Memory and load time: each detector built in a fresh process and its first short text read (resident set after,
minus before).
"""

from __future__ import annotations

import argparse
import gettext
import io
import json
import re
import subprocess
import sys
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DESK = ("en", "es", "fr", "pt")
SHORT_BELOW, MIN_CHARS, MAX_CHARS = 120, 12, 200  # as classifiers/language.py has them
LOCALES = {"es": "es", "fr": "fr", "pt": "pt"}  # a catalog's locale (es_MX, pt_BR …) → its language, by the part before "_"
PLACEHOLDERS = re.compile(r"%\([^)]*\)[sdrf]|%[sdrf]|\{[^}]*\}|<[^>]*>|&\w+;")
MEMORY_PROBE = """
import os, sys, time
def rss():
    for line in open(f"/proc/{os.getpid()}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
sys.path.insert(0, sys.argv[2])
before, started = rss(), time.perf_counter()
from bench.language import detectors
detect = detectors()[sys.argv[1]]
detect("validation report")
print(rss() - before, time.perf_counter() - started)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalogs", nargs="*", default=[], help="wheels or folders holding gettext catalogs (*.mo)")
    parser.add_argument("--long", action="store_true", help="texts of 120 letters or more (their first 200 characters) instead of short ones")
    args = parser.parse_args()
    kind = "long" if args.long else "short"
    sets = {"real enquiries": enquiry_texts([ROOT / "classifiers/data/real/enquiries.jsonl"], long_texts=args.long),
            "written for this project": enquiry_texts(sorted((ROOT / "classifiers/data").glob("examples-*.jsonl")), long_texts=args.long)}
    if args.catalogs:
        sets["human translations (catalogs)"] = catalog_texts([Path(p) for p in args.catalogs], long_texts=args.long)
    found = detectors()
    same_team = team_of()
    for name, texts in sets.items():
        counts = Counter(language for _, language in texts)
        print(f"\n{name}: {len(texts):,} {kind} texts ({', '.join(f'{k} {v:,}' for k, v in sorted(counts.items()))})")
        print(f"  {'detector':34} {'exact':>7} {'same team':>10} {'ms/text':>8}")
        for label, detect in found.items():
            started = time.perf_counter()
            answers = [(language, detect(text)) for text, language in texts]
            ms = 1000 * (time.perf_counter() - started) / len(texts)
            exact = sum(a == b for a, b in answers) / len(texts)
            team = sum(same_team(a) == same_team(b) for a, b in answers) / len(texts)
            print(f"  {label:34} {100 * exact:6.2f}% {100 * team:9.2f}% {ms:8.3f}")
    print("\nmemory and loading, each in a fresh process (the first short text read)")
    for label in found:
        done = subprocess.run([sys.executable, "-c", MEMORY_PROBE, label, str(ROOT)], capture_output=True, text=True, check=True)
        megabytes, seconds = map(float, done.stdout.split())
        print(f"  {label:34} {megabytes:6.0f} MB {seconds:6.2f} s")


def detectors() -> dict[str, Callable[[str], str]]:
    """Each way of reading a text, as a function from text to language code (the desk's first language when none)."""
    from lingua import LanguageDetectorBuilder  # noqa: PLC0415

    from classifiers.language import (FASTTEXT_WEIGHT, LanguageClassifier, fasttext_identifier,  # noqa: PLC0415
                                      fasttext_probabilities, lingua_languages)

    languages = lingua_languages(DESK)
    desk = LanguageClassifier(DESK)

    def lingua(low_accuracy: bool) -> Callable[[str], str]:
        builder = LanguageDetectorBuilder.from_languages(*languages)
        built = None

        def detect(text: str) -> str:
            nonlocal built
            built = built or (builder.with_low_accuracy_mode() if low_accuracy else builder).build()
            values = built.compute_language_confidence_values(text)
            return values[0].language.iso_code_639_1.name.lower() if values else DESK[0]
        return detect

    identifier = None

    def fasttext_alone(text: str) -> str:
        nonlocal identifier
        identifier = identifier or fasttext_identifier(DESK)
        scores = fasttext_probabilities(*identifier, text)
        return max(scores, key=scores.__getitem__) if any(scores.values()) else DESK[0]

    return {f"desk: fastText (short: ^{FASTTEXT_WEIGHT} × lingua)": lambda text: desk.classify(text).value,
            "lingua, every model (before)": lingua(low_accuracy=False),
            "lingua trigrams alone": lingua(low_accuracy=True),
            "fastText alone": fasttext_alone}


def team_of() -> Callable[[str], frozenset[str]]:
    """A language → the languages the default routing treats alike (rules on language alone)."""
    import yaml  # noqa: PLC0415

    rules = yaml.safe_load((ROOT / "config/routing.yaml").read_text(encoding="utf-8"))["rules"]
    groups = [frozenset(rule["when"]["language"]) for rule in rules if set(rule["when"]) == {"language"}]
    return lambda code: next((group for group in groups if code in group), frozenset())


def short(text: str) -> bool:
    return len(text) >= MIN_CHARS and sum(map(str.isalpha, text)) < SHORT_BELOW


def long_enough(text: str) -> bool:
    """What the desk reads as a long text: 120 letters or more in the first 200 characters (all it reads)."""
    return sum(map(str.isalpha, text[:MAX_CHARS])) >= SHORT_BELOW


def enquiry_texts(files: list[Path], *, long_texts: bool = False) -> list[tuple[str, str]]:
    found: dict[str, str] = {}
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            enquiry = json.loads(line)
            if enquiry.get("language") not in DESK:
                continue
            words = enquiry["text"].split()
            candidates = [" ".join(words)[:MAX_CHARS]] if long_texts else [enquiry["subject"], *(" ".join(words[:n]) for n in (5, 10, 15))]
            for text in candidates:
                if (long_enough if long_texts else short)(text := text.strip()):
                    found.setdefault(text, enquiry["language"])
    return sorted(found.items())


def catalog_texts(sources: list[Path], *, long_texts: bool = False) -> list[tuple[str, str]]:
    """English sources and their es/fr/pt translations; a text found under two languages (left untranslated) is left out."""
    seen: dict[str, set[str]] = {}
    for locale, data in catalogs(sources):
        language = LOCALES.get(locale.split("_")[0])
        if language is None:
            continue
        try:
            catalog = gettext.GNUTranslations(io.BytesIO(data))._catalog  # type: ignore[attr-defined]
        except (OSError, UnicodeDecodeError):
            continue
        for source, translation in catalog.items():
            source = source[0] if isinstance(source, tuple) else source
            if not source or not translation:
                continue
            for text, code in ((source.split("\x04")[-1], "en"), (translation, language)):
                text = " ".join(PLACEHOLDERS.sub(" ", text).split())
                if long_texts:
                    text = text[:MAX_CHARS].strip()
                if (long_enough if long_texts else short)(text):
                    seen.setdefault(text, set()).add(code)
    return sorted((text, codes.pop()) for text, codes in seen.items() if len(codes) == 1)


def catalogs(sources: list[Path]) -> Iterator[tuple[str, bytes]]:
    """(locale, .mo bytes) of every ``<locale>/LC_MESSAGES/*.mo`` in the wheels and folders."""
    pattern = re.compile(r"(?:^|/)([A-Za-z_@]+)/LC_MESSAGES/[^/]+\.mo$")
    for source in sources:
        if source.is_dir():
            for path in sorted(source.rglob("*.mo")):
                if match := pattern.search(path.as_posix()):
                    yield match.group(1), path.read_bytes()
        else:
            with zipfile.ZipFile(source) as wheel:
                for name in wheel.namelist():
                    if match := pattern.search(name):
                        yield match.group(1), wheel.read(name)


if __name__ == "__main__":
    main()
