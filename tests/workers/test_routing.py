from __future__ import annotations

import pytest

from config.desk import load_desk
from config.settings import load_settings
from workers.intake.routing import RouteFacts, Router


@pytest.fixture(scope="module")
def router() -> Router:
    return Router(load_desk(load_settings(environ={})).routing)


def facts(**overrides: object) -> RouteFacts:
    base = dict(type="schema", sector="civil_society", language="en", channel="email", domain="ngo.org", text="", needs_triage=False)
    base.update(overrides)
    return RouteFacts(**base)  # type: ignore[arg-type]


def test_first_matching_rule_wins_and_is_explained(router: Router) -> None:
    decision = router.route(facts(type="schema", sector="government"))
    assert (decision.team, decision.priority, decision.rule) == ("data", "high", "government-data")
    assert "type schema ∈" in decision.reasons[0]
    assert "sector government ∈" in decision.reasons[0]


def test_language_rule_comes_before_type_rules(router: Router) -> None:
    assert router.route(facts(language="pt", type="tools")).team == "latam"


def test_keywords_and_type_together(router: Router) -> None:
    decision = router.route(facts(type="tools", text="URGENT: the registry is down"))
    assert decision.rule == "urgent-outage"
    assert decision.priority == "high"
    assert "keyword 'urgent'" in decision.reasons[0]
    assert router.route(facts(type="tools", text="a question")).rule == "tools"


def test_the_text_is_split_into_words_only_for_a_keyword_rule_whose_other_conditions_held(
    router: Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the default rules, whose one keyword rule also asks for type tools, and a count of the text's splits
    import workers.intake.routing as routing  # noqa: PLC0415

    splits: list[str] = []
    split = routing.words
    monkeypatch.setattr(routing, "words", lambda text: splits.append(text) or split(text))
    long_text = "We publish our awards data every month. " * 100
    # When a schema question is routed, and then two tools questions
    assert router.route(facts(type="schema", text=long_text)).rule != "urgent-outage"
    assert splits == []
    assert router.route(facts(type="tools", text="urgent: the registry is down")).rule == "urgent-outage"
    assert router.route(facts(type="tools", text="a question")).rule == "tools"
    # Then only the tools questions were split, each once
    assert splits == ["urgent: the registry is down", "a question"]


def test_needs_triage(router: Router) -> None:
    assert router.route(facts(needs_triage=True)).team == "triage"


def test_default_when_nothing_matches(router: Router) -> None:
    decision = router.route(facts(type="other"))
    assert (decision.team, decision.rule) == ("general", "default")


def test_region_from_the_country_code_domain(router: Router) -> None:
    decision = router.route(facts(sector="government", domain="minhacienda.gob.cl"))
    assert decision.rule == "latin-american-governments"
    assert "country cl in region latin_america" in decision.reasons[0]
    assert router.route(facts(sector="government", domain="finance.gov.uk")).rule == "government-data"


def test_country_and_confidence_conditions() -> None:
    from config.desk import Routing

    routing = Routing.model_validate({
        "version": 1, "default": {"team": "general"},
        "rules": [
            {"name": "kenya", "when": {"country": ["ke"]}, "team": "tech"},
            {"name": "unsure", "when": {"max_confidence": 0.5}, "team": "triage"},
        ],
    })
    router = Router(routing)
    assert router.route(facts(domain="treasury.go.ke")).team == "tech"
    assert router.route(facts(domain="x.org", confidence=0.3)).team == "triage"
    assert router.route(facts(domain="x.org", confidence=0.9)).team == "general"
