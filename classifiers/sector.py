"""Enquirer sector from the sender's address and signature.

Evidence in order of strength:
1. the organisation registry (domain → organisation → sector, parents included:
   compras.worldbank.org → worldbank.org);
2. public-suffix-aware domain patterns (``gov.uk``, ``gob.*``, ``ac.*``, ``edu`` …);
3. the organisation named in the signature ("Municipio de Tlaxcala" → government);
4. the learned model, or a generic top-level hint (``.org``, ``.com``), whichever
   is more confident;
A free-mail domain is no evidence at all and never becomes an organisation: a
free-mail sender with no organisation in sight is an individual.
"""

from __future__ import annotations

import fnmatch
import functools
from dataclasses import dataclass

from classifiers.model import SectorModel
from classifiers.result import Label
from classifiers.signature import CONFIDENCE as SIGNATURE_CONFIDENCE
from classifiers.signature import signature_organisation
from config.desk import DomainPattern, OrganisationRegistry, Taxonomy

STRONG_PATTERN = 0.8  # domain patterns at least this confident outrank a signature


@dataclass(frozen=True)
class SectorResult:
    label: Label
    organisation_domain: str | None  # the organisation this sender belongs to, if any
    organisation_name: str | None


class SectorClassifier:
    def __init__(self, taxonomy: Taxonomy, registry: OrganisationRegistry, model: SectorModel | None = None) -> None:
        self.free_mail = taxonomy.free_mail_domains
        self.registry = {org.domain.lower(): org for org in registry.organisations}
        self.patterns: list[tuple[tuple[str, ...], DomainPattern]] = [
            (tuple(reversed(p.pattern.lower().split("."))), p) for p in taxonomy.domain_patterns
        ]
        self.model = model

    def classify(self, address: str, text: str = "") -> SectorResult:
        domain = address.rsplit("@", 1)[1].lower().strip(".") if "@" in address else ""
        if domain and domain not in self.free_mail:
            return self._by_domain(domain, address, text)
        signed = self._by_signature(text, None)
        if signed is not None:
            return signed
        model = self._by_model(address, text, None, floor=0.5, exclude={"individual"})
        if model is not None:
            return model
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
        pattern = next((p for labels, p in self.patterns if _suffix_matches(domain, labels)), None)
        if pattern is not None and pattern.confidence >= STRONG_PATTERN:
            reason = f"domain {domain} matches *.{pattern.pattern} → {pattern.sector}"
            return SectorResult(Label(pattern.sector, pattern.confidence, (reason,)), org_domain, None)
        signed = self._by_signature(text, org_domain)
        if signed is not None:
            return signed
        floor = pattern.confidence if pattern is not None else 0.35
        model = self._by_model(address, text, org_domain, floor=floor, exclude={"individual"})
        if model is not None:
            return model
        if pattern is not None:
            reason = f"domain {domain} matches *.{pattern.pattern} → {pattern.sector} (a weak hint)"
            return SectorResult(Label(pattern.sector, pattern.confidence, (reason,)), org_domain, None)
        return SectorResult(Label("unknown", 0.1, (f"no evidence for domain {domain}",)), org_domain, None)

    def _by_signature(self, text: str, org_domain: str | None) -> SectorResult | None:
        found = signature_organisation(text) if text else None
        if found is None:
            return None
        reason = f"signature names {found.line!r} → {found.sector}"
        return SectorResult(Label(found.sector, SIGNATURE_CONFIDENCE, (reason,)), org_domain, None)

    def _by_model(self, address: str, text: str, org_domain: str | None, *, floor: float, exclude: set[str]) -> SectorResult | None:
        if self.model is None:
            return None
        ranked = [(sector, p) for sector, p in self.model.predict_one(address, text, top=len(exclude) + 1) if sector not in exclude]
        if not ranked or ranked[0][1] < floor:
            return None
        sector, probability = ranked[0]
        return SectorResult(Label(sector, round(probability, 3), (f"model: {probability:.2f} {sector}",)), org_domain, None)


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
