"""The classifier the worker calls: enquiry type, sector and language in one pass."""

from __future__ import annotations

from classifiers.enquiry_type import KeywordTypeClassifier, Tokens
from classifiers.language import LanguageClassifier
from classifiers.model import TrainedModels
from classifiers.result import Classification, Label
from classifiers.sector import SectorClassifier
from config.desk import DeskConfig

MAX_CUES_SHOWN = 6


class EnquiryClassifier:
    """Built once per process from the desk configuration and the newest trained models.

    ``classify`` is pure and thread-safe. Without trained models the rule layer
    decides the type alone (the keyword baseline).
    """

    def __init__(self, desk: DeskConfig, triage_confidence: float, models: TrainedModels | None = None) -> None:
        self.types = KeywordTypeClassifier(desk.taxonomy)
        self.models = models
        self.sectors = SectorClassifier(desk.taxonomy, desk.organisations)
        self.languages = LanguageClassifier(desk.languages)
        self.triage_confidence = triage_confidence

    @property
    def version(self) -> str:
        return self.models.version if self.models else "rules"

    def classify(self, *, subject: str, text: str, sender: str, sector_text: str | None = None) -> Classification:
        """``text`` decides the type and language; ``sector_text`` (default ``text``) who is asking (a signature helps)."""
        enquiry_type = self.classify_type(subject, text)
        sector = self.sectors.classify(sender, text if sector_text is None else sector_text)
        language = self.languages.classify(f"{subject}\n{text}")
        return Classification(
            type=enquiry_type,
            sector=sector.label,
            language=language,
            needs_triage=enquiry_type.confidence < self.triage_confidence,
            organisation=sector.organisation_domain,
            organisation_name=sector.organisation_name,
        )

    def classify_type(self, subject: str, text: str) -> Label:
        tokens = Tokens.of(subject, text)
        scores = self.types.scores_tokens(tokens)
        rules = self.types.decide(scores)
        if self.models is None:
            return rules
        ranked = self.models.type_model.predict_one(tokens, scores, top=2)
        (best, probability), (runner, runner_p) = ranked[0], ranked[1]
        reasons = [f"model {self.models.version}: {probability:.2f} {best} (next: {runner} {runner_p:.2f})"]
        for name, role in ((best, f"cues for {best}"), (runner, f"cues for the runner-up {runner}")):
            cues = scores.get(name, (0.0, []))[1]
            if cues:  # each type's own cues, never another type's under its name
                reasons.append(f"{role}: " + ", ".join(repr(c) for c in cues[:MAX_CUES_SHOWN]))
        return Label(best, round(probability, 3), tuple(reasons))
