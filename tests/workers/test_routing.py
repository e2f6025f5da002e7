from __future__ import annotations

import pytest

from config.desk import load_desk
from config.settings import load_settings
from workers.routing import RouteFacts, Router


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
    assert "type schema ∈" in decision.reasons[0] and "sector government ∈" in decision.reasons[0]


def test_language_rule_comes_before_type_rules(router: Router) -> None:
    assert router.route(facts(language="pt", type="tools")).team == "latam"


def test_keywords_and_type_together(router: Router) -> None:
    decision = router.route(facts(type="tools", text="URGENT: the registry is down"))
    assert decision.rule == "urgent-outage" and decision.priority == "high"
    assert "keyword 'urgent'" in decision.reasons[0]
    assert router.route(facts(type="tools", text="a question")).rule == "tools"


def test_needs_triage(router: Router) -> None:
    assert router.route(facts(needs_triage=True)).team == "triage"


def test_default_when_nothing_matches(router: Router) -> None:
    decision = router.route(facts(type="other"))
    assert (decision.team, decision.rule) == ("general", "default")
