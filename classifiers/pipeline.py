"""The classifier the worker calls: enquiry type, sector and language in one pass."""

from __future__ import annotations

from classifiers.enquiry_type import KeywordTypeClassifier
from classifiers.language import LanguageClassifier
from classifiers.result import Classification
from classifiers.sector import SectorClassifier
from config.desk import DeskConfig


class EnquiryClassifier:
    """Built once per process from the desk configuration; ``classify`` is pure and thread-safe."""

    def __init__(self, desk: DeskConfig, triage_confidence: float) -> None:
        self.types = KeywordTypeClassifier(desk.taxonomy)
        self.sectors = SectorClassifier(desk.taxonomy, desk.organisations)
        self.languages = LanguageClassifier(desk.languages)
        self.triage_confidence = triage_confidence

    def classify(self, *, subject: str, text: str, sender: str) -> Classification:
        enquiry_type = self.types.classify(subject, text)
        sector = self.sectors.classify(sender)
        language = self.languages.classify(f"{subject}\n{text}")
        return Classification(
            type=enquiry_type,
            sector=sector.label,
            language=language,
            needs_triage=enquiry_type.confidence < self.triage_confidence,
            organisation=sector.organisation_domain,
            organisation_name=sector.organisation_name,
        )
