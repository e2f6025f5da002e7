"""Routing: the first rule whose every condition holds decides team and priority — and says why."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from classifiers.text import PhraseIndex, words
from config.desk import Routing, RoutingRule


@dataclass(frozen=True)
class RouteFacts:
    """What routing may look at."""

    type: str
    sector: str
    language: str
    channel: str
    domain: str | None
    text: str
    needs_triage: bool
    organisation: str | None = None
    confidence: float = 1.0

    @property
    def country(self) -> str | None:
        """ISO code of the sender's country-code top-level domain (hacienda.gob.mx → mx); None for .org, .gov …"""
        if not self.domain:
            return None
        tld = self.domain.rsplit(".", 1)[-1].lower()
        return ("gb" if tld == "uk" else tld) if len(tld) == 2 and tld.isalpha() else None


@dataclass(frozen=True)
class RouteDecision:
    team: str
    priority: str
    rule: str
    reasons: tuple[str, ...]
    tags: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {"team": self.team, "priority": self.priority, "rule": self.rule, "reasons": list(self.reasons), "tags": list(self.tags)}


class Router:
    def __init__(self, routing: Routing) -> None:
        self.routing = routing
        self._keywords = {
            rule.name: PhraseIndex({k: {k} for k in rule.when.keywords}) for rule in routing.rules if rule.when.keywords
        }

    def route(self, facts: RouteFacts) -> RouteDecision:
        tokens: list[str] | None = None

        def text_tokens() -> list[str]:
            """The text's words, split once and only for a rule whose other conditions held (keywords are looked at last)."""
            nonlocal tokens
            if tokens is None:
                tokens = words(facts.text[:6000])
            return tokens

        for rule in self.routing.rules:
            reasons = self._match(rule, facts, text_tokens)
            if reasons is not None:
                return RouteDecision(rule.team, rule.priority, rule.name, tuple(reasons) or ("unconditional rule",), rule.tags)
        default = self.routing.default
        return RouteDecision(default.team, default.priority, "default", ("no rule matched: default team",))

    def _match(self, rule: RoutingRule, facts: RouteFacts, tokens: Callable[[], list[str]]) -> list[str] | None:
        """The reasons every condition holds, or None at the first that does not."""
        when = rule.when
        reasons: list[str] = []
        for field in ("type", "sector", "language", "channel", "country"):
            allowed = getattr(when, field)
            if allowed is None:
                continue
            value = getattr(facts, field)
            if value not in allowed:
                return None
            reasons.append(f"{field} {value} ∈ [{', '.join(allowed)}]")
        if when.region is not None:
            country = facts.country
            region = next((r for r in when.region if country in self.routing.regions.get(r, ())), None)
            if region is None:
                return None
            reasons.append(f"country {country} in region {region}")
        if when.organisation is not None:
            if facts.organisation not in when.organisation:
                return None
            reasons.append(f"organisation {facts.organisation}")
        if when.min_confidence is not None:
            if facts.confidence < when.min_confidence:
                return None
            reasons.append(f"confidence {facts.confidence:.2f} ≥ {when.min_confidence}")
        if when.max_confidence is not None:
            if facts.confidence > when.max_confidence:
                return None
            reasons.append(f"confidence {facts.confidence:.2f} ≤ {when.max_confidence}")
        if when.domain is not None:
            domain = facts.domain or ""
            hit = next((d for d in when.domain if domain == d or domain.endswith("." + d)), None)
            if hit is None:
                return None
            reasons.append(f"domain {domain} under {hit}")
        if when.needs_triage is not None:
            if facts.needs_triage != when.needs_triage:
                return None
            reasons.append("needs triage" if facts.needs_triage else "confidently classified")
        if when.keywords:
            found = self._keywords[rule.name].find(tokens())
            if not found:
                return None
            reasons.append(f"keyword {found[0][0]!r}")
        return [f"rule {rule.name}: " + "; ".join(reasons)] if reasons else []
