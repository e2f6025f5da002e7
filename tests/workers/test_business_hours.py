"""Business-time arithmetic: weekends, holidays, time zones and DST changes, exactly."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from config.desk import Calendar
from workers.desk.business_hours import BusinessCalendar

LONDON = BusinessCalendar(Calendar(timezone="Europe/London", working_hours="09:00-17:00"))
UTC = timezone.utc


def london(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=ZoneInfo("Europe/London"))


def test_within_one_day() -> None:
    assert LONDON.add(london(2026, 11, 2, 10), timedelta(hours=3)) == london(2026, 11, 2, 13)


def test_over_the_weekend() -> None:
    # Friday 16:00 + 2 h → Monday 10:00
    assert LONDON.add(london(2026, 11, 6, 16), timedelta(hours=2)) == london(2026, 11, 9, 10)
    assert LONDON.elapsed(london(2026, 11, 6, 16), london(2026, 11, 9, 10)) == timedelta(hours=2)


def test_before_opening_and_after_closing() -> None:
    assert LONDON.add(london(2026, 11, 2, 6), timedelta(minutes=30)) == london(2026, 11, 2, 9, 30)
    assert LONDON.add(london(2026, 11, 2, 19), timedelta(hours=1)) == london(2026, 11, 3, 10)


def test_public_and_listed_holidays() -> None:
    cal = BusinessCalendar(Calendar(timezone="Europe/London", working_hours="09:00-17:00", holiday_country="GB",
                                    holidays=(date(2026, 12, 24),)))
    # Wed 23 Dec 16:00 + 2 h: 24th listed, 25th and 28th (Boxing Day substitute) are public holidays → Tue 29 Dec 10:00
    assert cal.add(london(2026, 12, 23, 16), timedelta(hours=2)) == london(2026, 12, 29, 10)
    assert not cal.is_working_day(date(2026, 12, 25))
    assert not cal.is_working_day(date(2026, 12, 24))


def test_spring_forward_keeps_wall_clock_hours() -> None:
    # Clocks go forward on Sunday 29 March 2026 in London: Friday 16:00 (GMT) + 2 h = Monday 10:00 (BST)
    end = LONDON.add(london(2026, 3, 27, 16), timedelta(hours=2))
    assert end == london(2026, 3, 30, 10)
    assert end.astimezone(UTC).hour == 9
    assert LONDON.add(london(2026, 3, 27, 16), timedelta(hours=2)) - london(2026, 3, 27, 16) == timedelta(days=2, hours=17)


def test_fall_back_day_counts_eight_working_hours() -> None:
    # A Sunday-to-Sunday shift calendar working through the change on 25 October 2026 (clocks go back at 02:00)
    cal = BusinessCalendar(Calendar(timezone="Europe/London", working_hours="00:00-24:00",
                                    working_days=("mon", "tue", "wed", "thu", "fri", "sat", "sun")))
    assert cal.elapsed(london(2026, 10, 25, 0), london(2026, 10, 26, 0)) == timedelta(hours=25)  # that day really has 25 hours


def test_time_zones_are_the_calendars_own() -> None:
    sao_paulo = BusinessCalendar(Calendar(timezone="America/Sao_Paulo", working_hours="09:00-18:00"))
    start = datetime(2026, 11, 2, 20, 0, tzinfo=UTC)  # 17:00 in São Paulo
    assert sao_paulo.add(start, timedelta(hours=2)) == datetime(2026, 11, 3, 13, 0, tzinfo=UTC)  # 10:00 next day there


def test_durations_in_days_follow_the_working_day() -> None:
    assert LONDON.duration("2d") == timedelta(hours=16)
    assert LONDON.duration("90m") == timedelta(minutes=90)


working_instants = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC))


@settings(max_examples=200, deadline=None)
@given(start=working_instants, minutes=st.integers(min_value=0, max_value=60 * 24 * 40))
def test_add_then_elapsed_gives_the_amount_back(start: datetime, minutes: int) -> None:
    amount = timedelta(minutes=minutes)
    end = LONDON.add(start, amount)
    assert end >= start
    assert LONDON.elapsed(start, end) == amount
    if amount > timedelta(0):
        assert LONDON.is_open(end - timedelta(seconds=1))  # a target always falls due during working hours


@settings(max_examples=100, deadline=None)
@given(a=working_instants, b=working_instants, c=working_instants)
def test_elapsed_is_additive(a: datetime, b: datetime, c: datetime) -> None:
    a, b, c = sorted((a, b, c))
    assert LONDON.elapsed(a, b) + LONDON.elapsed(b, c) == LONDON.elapsed(a, c)


def test_a_calendars_public_holidays_are_its_countrys_and_a_calendar_without_a_country_has_none() -> None:
    english = BusinessCalendar(Calendar(timezone="Europe/London", working_hours="09:00-17:00", holiday_country="gb"))
    assert {date(2026, 12, 25), date(2026, 12, 28)} <= english.public_holidays(2026)  # Boxing Day on a Saturday: the Monday after
    assert not english.is_working_day(date(2026, 12, 28))
    assert LONDON.public_holidays(2026) == frozenset()
