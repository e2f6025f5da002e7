"""Fair assignment: capacity, availability, round-robin fairness, least-loaded — as properties."""

from __future__ import annotations

from datetime import date, datetime, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from config.desk import Member, Team
from workers.desk.assignment import availability, choose

ALWAYS = {"working_hours": "00:00-24:00", "working_days": ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
MONDAY_NOON = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)


def team(members: list[Member], strategy: str = "round_robin") -> Team:
    return Team(name="t", members=tuple(members), strategy=strategy)


def member(key: str, capacity: int = 100, **extra: object) -> Member:
    return Member(key=key, name=key, capacity=capacity, **{**ALWAYS, **extra})


@settings(max_examples=150, deadline=None)
@given(
    capacities=st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=6),
    on_leave=st.lists(st.booleans(), min_size=6, max_size=6),
    events=st.lists(st.sampled_from(["new", "new", "new", "resolve"]), max_size=80),
    strategy=st.sampled_from(["round_robin", "least_loaded"]),
)
def test_nobody_ever_exceeds_capacity_and_nobody_away_gets_work(capacities, on_leave, events, strategy) -> None:  # noqa: ANN001
    members = [member(f"m{i}", c, on_leave_until=date(2026, 12, 31) if on_leave[i] else None) for i, c in enumerate(capacities)]
    t = team(members, strategy)
    loads: dict[str, int] = {}
    open_tickets: list[str] = []
    last = None
    for event in events:
        if event == "resolve" and open_tickets:
            done = open_tickets.pop(0)
            loads[done] -= 1
            continue
        choice = choose(t, loads, last, MONDAY_NOON)
        if choice.member is None:
            continue
        chosen = next(m for m in members if m.key == choice.member)
        assert chosen.on_leave_until is None
        loads[chosen.key] = loads.get(chosen.key, 0) + 1
        assert loads[chosen.key] <= chosen.capacity
        open_tickets.append(chosen.key)
        last = chosen.key
    # whenever someone was free, the ticket was not left in the backlog
    free = [m for m in members if m.on_leave_until is None and loads.get(m.key, 0) < m.capacity]
    assert (choose(t, loads, last, MONDAY_NOON).member is None) == (not free)


@settings(max_examples=50, deadline=None)
@given(size=st.integers(min_value=1, max_value=7), tickets=st.integers(min_value=0, max_value=200))
def test_round_robin_is_fair(size: int, tickets: int) -> None:
    t = team([member(f"m{i}") for i in range(size)])
    counts: dict[str, int] = {}
    last = None
    for _ in range(tickets):
        last = choose(t, {}, last, MONDAY_NOON).member
        counts[last] = counts.get(last, 0) + 1
    if tickets:
        assert max(counts.values()) - min(counts.get(f"m{i}", 0) for i in range(size)) <= 1


def test_least_loaded_takes_the_smallest_share_of_capacity_and_explains() -> None:
    t = team([member("a", 10), member("b", 4)], "least_loaded")
    choice = choose(t, {"a": 5, "b": 1}, None, MONDAY_NOON)
    assert choice.member == "b"
    assert choice.reasons[0].startswith("least loaded: b 1/4")


def test_off_shift_and_on_leave_are_explained() -> None:
    london = Member(key="ana", name="Ana", timezone="Europe/London", working_hours="09:00-17:30")
    assert availability(london, team([london]), MONDAY_NOON) is None
    evening = datetime(2026, 11, 2, 20, 0, tzinfo=timezone.utc)
    assert availability(london, team([london]), evening).startswith("off shift")
    away = london.model_copy(update={"on_leave_until": date(2026, 11, 6)})
    assert availability(away, team([away]), MONDAY_NOON) == "on leave until 2026-11-06"
    choice = choose(team([away]), {}, None, MONDAY_NOON)
    assert choice.member is None
    assert "ana on leave until 2026-11-06" in choice.reasons
