"""What every classifier returns: a label with a confidence and the reasons for it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Label:
    """One decision: ``value`` with ``confidence`` in [0, 1] and human-readable ``reasons``."""

    value: str
    confidence: float
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {"value": self.value, "confidence": round(self.confidence, 3), "reasons": list(self.reasons)}


@dataclass(frozen=True)
class Classification:
    """Type, sector and language of one enquiry, and whether staff must triage it."""

    type: Label
    sector: Label
    language: Label
    needs_triage: bool
    organisation: str | None = None  # the organisation's domain, when one was identified
    organisation_name: str | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "type": self.type.to_dict(),
            "sector": self.sector.to_dict(),
            "language": self.language.to_dict(),
            "needs_triage": self.needs_triage,
            "organisation": self.organisation,
            "organisation_name": self.organisation_name,
        }
