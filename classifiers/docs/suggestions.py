"""What signposting gives a ticket: suggested pages, and whether the enquiry is a possible documentation gap."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Suggestion:
    """One documentation page suggested for an enquiry; ``score`` in [0, 1], higher is better."""

    title: str
    url: str
    score: float

    def as_dict(self) -> dict[str, Any]:
        return {"title": self.title, "url": self.url, "score": round(self.score, 4)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Suggestion:
        return cls(title=str(data["title"]), url=str(data["url"]), score=float(data["score"]))


@dataclass(frozen=True)
class Signposting:
    """What a ticket stores: the suggestions worth showing, and whether this is a possible gap.

    When ``gap`` is true ``suggestions`` is empty: weak matches are not sent to enquirers.
    """

    suggestions: tuple[Suggestion, ...]
    gap: bool

    def to_json(self) -> list[dict[str, Any]]:
        return [s.as_dict() for s in self.suggestions]
