"""Enquirer sector from the sender's address.

Evidence in order of strength: the organisation registry (domain → organisation
→ sector, parents included: compras.worldbank.org → worldbank.org), then
public-suffix-aware domain patterns (``gov.uk``, ``gob.*``, ``ac.*``, ``edu`` …),
then generic top-level hints. A free-mail domain is no evidence at all and
never becomes an organisation.
"""

from __future__ import annotations

import fnmatch
import functools
from dataclasses import dataclass

from classifiers.result import Label
from config.desk import DomainPattern, OrganisationRegistry, Taxonomy


@dataclass(frozen=True)
class SectorResult:
    label: Label
    organisation_domain: str | None  # the organisation this sender belongs to, if any
    organisation_name: str | None


class SectorClassifier:
    def __init__(self, taxonomy: Taxonomy, registry: OrganisationRegistry) -> None:
        self.free_mail = taxonomy.free_mail_domains
        self.registry = {org.domain.lower(): org for org in registry.organisations}
        self.patterns: list[tuple[tuple[str, ...], DomainPattern]] = [
            (tuple(reversed(p.pattern.lower().split("."))), p) for p in taxonomy.domain_patterns
        ]

    def classify(self, address: str) -> SectorResult:
        domain = address.rsplit("@", 1)[1].lower().strip(".") if "@" in address else ""
        if not domain:
            return SectorResult(Label("unknown", 0.0, ("no e-mail domain",)), None, None)
        if domain in self.free_mail:
            reason = f"{domain} is a free-mail provider: no organisation, a person writing for themselves"
            return SectorResult(Label("individual", 0.55, (reason,)), None, None)
        for candidate in _parents(domain):
            org = self.registry.get(candidate)
            if org is not None:
                reason = f"domain {domain} → registry: {org.name} ({org.sector})"
                return SectorResult(Label(org.sector, 0.98, (reason,)), org.domain, org.name)
        org_domain = registrable_domain(domain)
        for labels, pattern in self.patterns:
            if _suffix_matches(domain, labels):
                reason = f"domain {domain} matches *.{pattern.pattern} → {pattern.sector}"
                return SectorResult(Label(pattern.sector, pattern.confidence, (reason,)), org_domain, None)
        return SectorResult(Label("unknown", 0.1, (f"no evidence for domain {domain}",)), org_domain, None)


def _parents(domain: str) -> list[str]:
    labels = domain.split(".")
    return [".".join(labels[i:]) for i in range(len(labels) - 1)]


def _suffix_matches(domain: str, pattern_labels: tuple[str, ...]) -> bool:
    labels = list(reversed(domain.split(".")))
    if len(labels) <= len(pattern_labels):
        return False  # the pattern must leave at least one label of the organisation's own
    return all(fnmatch.fnmatchcase(label, want) for label, want in zip(labels, pattern_labels))


@functools.cache
def _extractor():  # noqa: ANN202 - tldextract.TLDExtract, imported lazily
    import tldextract  # noqa: PLC0415 - loaded once, on first use

    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def registrable_domain(domain: str) -> str:
    """The organisation's own domain per the Public Suffix List: mail.finance.gov.uk → finance.gov.uk.

    Uses tldextract's bundled list snapshot; it never fetches over the network.
    """
    parts = _extractor()(domain)
    return parts.top_domain_under_public_suffix or domain
