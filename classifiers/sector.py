"""Enquirer sector from evidence only: who the sender is, never what they write about.

Evidence in order of strength:
1. the organisation registry (domain → organisation → sector, parents included:
   compras.worldbank.org → worldbank.org);
2. public-suffix-aware domain patterns (``gov.uk``, ``gob.*``, ``ac.*``, ``edu`` …);
3. what the enquirers say of themselves ("I work for the Ministry of Finance", "we are an NGO");
4. the organisation named in the signature after a sign-off ("Municipio de Tlaxcala" → government);
5. a generic top-level hint (``.org``, ``.com``), weak.
A free-mail domain is no evidence at all and never becomes an organisation: a
free-mail sender with no organisation in sight is an individual. With no evidence
the sector is ``unknown`` — topic words ("tender", "budget", "research") never decide
it: a wrong sector corrupts the "who asks" figures silently, ``unknown`` does not.
Each reason quotes its evidence.
"""

from __future__ import annotations

import fnmatch
import functools
import threading
from dataclasses import dataclass

from classifiers.result import Label
from classifiers.self_statement import self_statement
from classifiers.signature import CONFIDENCE as SIGNATURE_CONFIDENCE
from classifiers.signature import signature_organisation
from config.desk import DomainPattern, OrganisationRegistry, Taxonomy

STRONG_PATTERN = 0.8  # domain patterns at least this confident outrank a signature
SELF_STATEMENT_CONFIDENCE = 0.85


@dataclass(frozen=True)
class SectorResult:
    label: Label
    organisation_domain: str | None  # the organisation this sender belongs to, if any
    organisation_name: str | None


PATTERN_CACHE = 8192


class SectorClassifier:
    def __init__(self, taxonomy: Taxonomy, registry: OrganisationRegistry) -> None:
        self.free_mail = taxonomy.free_mail_domains
        self.registry = {org.domain.lower(): org for org in registry.organisations}
        self.patterns: list[tuple[tuple[str, ...], DomainPattern]] = [
            (tuple(reversed(p.pattern.lower().split("."))), p) for p in taxonomy.domain_patterns
        ]
        self._patterns_of: dict[str, DomainPattern | None] = {}

    def classify(self, address: str, text: str = "") -> SectorResult:
        domain = address.rsplit("@", 1)[1].lower().strip(".") if "@" in address else ""
        if domain and domain not in self.free_mail:
            return self._by_domain(domain, address, text)
        stated = self._by_statement(text, None)
        if stated is not None:
            return stated
        if not domain:
            return SectorResult(Label("unknown", 0.0, ("no e-mail domain and no organisation named",)), None, None)
        reason = f"{domain} is a free-mail provider and no organisation is named: a person writing for themselves"
        return SectorResult(Label("individual", 0.6, (reason,)), None, None)

    def _by_domain(self, domain: str, address: str, text: str) -> SectorResult:
        for candidate in _parents(domain):
            org = self.registry.get(candidate)
            if org is not None:
                reason = f"domain {domain} → registry: {org.name} ({org.sector})"
                return SectorResult(Label(org.sector, 0.98, (reason,)), org.domain, org.name)
        org_domain = registrable_domain(domain)
        pattern = self._pattern(domain)
        if pattern is not None and pattern.confidence >= STRONG_PATTERN:
            reason = f"domain {domain} matches *.{pattern.pattern} → {pattern.sector}"
            return SectorResult(Label(pattern.sector, pattern.confidence, (reason,)), org_domain, None)
        stated = self._by_statement(text, org_domain)
        if stated is not None:
            return stated
        if pattern is not None:
            reason = f"domain {domain} matches *.{pattern.pattern} → {pattern.sector} (a weak hint)"
            return SectorResult(Label(pattern.sector, pattern.confidence, (reason,)), org_domain, None)
        return SectorResult(Label("unknown", 0.1, (f"no evidence for domain {domain}",)), org_domain, None)

    def _pattern(self, domain: str) -> DomainPattern | None:
        """The first of the taxonomy's domain patterns that ``domain`` matches (remembered per domain, boundedly)."""
        cache = self._patterns_of
        try:
            return cache[domain]
        except KeyError:
            pass
        found = next((p for labels, p in self.patterns if _suffix_matches(domain, labels)), None)
        if len(cache) >= PATTERN_CACHE:
            cache.clear()  # another thread may clear it too: each keeps what it found
        cache[domain] = found
        return found

    def _by_statement(self, text: str, org_domain: str | None) -> SectorResult | None:
        """What the writers say of themselves, in a sentence or in their signature."""
        if not text:
            return None
        said = self_statement(text)
        if said is not None:
            reason = f"the enquirer says {said.phrase!r} → {said.sector}"
            return SectorResult(Label(said.sector, SELF_STATEMENT_CONFIDENCE, (reason,)), org_domain, None)
        found = signature_organisation(text)
        if found is not None:
            reason = f"signature names {found.line!r} → {found.sector}"
            return SectorResult(Label(found.sector, SIGNATURE_CONFIDENCE, (reason,)), org_domain, None)
        return None


def _parents(domain: str) -> list[str]:
    labels = domain.split(".")
    return [".".join(labels[i:]) for i in range(len(labels) - 1)]


def _suffix_matches(domain: str, pattern_labels: tuple[str, ...]) -> bool:
    labels = list(reversed(domain.split(".")))
    if len(labels) <= len(pattern_labels):
        return False  # the pattern must leave at least one label of the organisation's own
    return all(fnmatch.fnmatchcase(label, want) for label, want in zip(labels, pattern_labels))


_SUFFIXES_LOCK = threading.Lock()


@functools.cache
def _suffixes():  # noqa: ANN202 - publicsuffixlist.PublicSuffixList, imported lazily
    # functools.cache lets every thread that arrives before the first is done build its own: a worker's threads
    # all meet their first message together, and each would parse the whole list
    with _SUFFIXES_LOCK:
        return _build_suffixes()


@functools.cache
def _build_suffixes():  # noqa: ANN202
    from publicsuffixlist import PublicSuffixList  # noqa: PLC0415 - loaded once, on first use

    # The ICANN section only (blogspot.com's users are one organisation, as tldextract counted them), and a domain
    # under no listed suffix (localhost, a .internal name) is its own organisation. The rules are kept as the list
    # writes them, in Unicode: adding each one's ASCII form (xn--…) made loading three times as slow (34 against
    # 10 ms); `registrable_domain` reads such a domain in Unicode instead.
    return PublicSuffixList(only_icann=True, accept_unknown=False, accept_encoded_idn=False)


@functools.lru_cache(maxsize=8192)  # a desk hears from the same domains again and again
def registrable_domain(domain: str) -> str:
    """The organisation's own domain per the Public Suffix List: mail.finance.gov.uk → finance.gov.uk.

    Reads the list ``publicsuffixlist`` ships (0.01 s to load; tldextract took 0.2 s, most of it importing
    requests for downloads we never made); it never fetches over the network. A domain in its ASCII form
    (mail.xn--55qx5d.cn) is looked up in Unicode, label by label, and answered in the form it came in.
    """
    if "xn--" not in domain:
        return _suffixes().privatesuffix(domain) or domain
    labels = domain.split(".")
    found = _suffixes().privatesuffix(".".join(map(_unicode_label, labels)))
    if not found:
        return domain
    return ".".join(labels[-(found.count(".") + 1):])  # decoding kept the labels: the same last ones


def _unicode_label(label: str) -> str:
    """An ``xn--`` label's Unicode (raw Punycode: IDNA 2003's codec refuses ß and ς, which IDNA 2008 allows), else as it is."""
    if not label.startswith("xn--"):
        return label
    try:
        decoded = label[4:].encode("ascii").decode("punycode")
    except UnicodeError:  # not Punycode: no rule is written so, and it stays what it is
        return label
    return decoded or label  # "xn--" alone is a label, not an empty one
