"""Business-time arithmetic for SLA clocks: working days, hours, holidays, time zones, DST.

Each working day's opening and closing times are wall-clock times in the
calendar's zone, turned into UTC for that particular date — so a clock that
runs across a DST change, a weekend or a public holiday counts exactly the
hours someone could have been working. Pure: no "now", and no I/O but the public holidays' file (``public_holidays``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from config.desk import WEEKDAYS, Calendar
from workers.desk import public_holidays

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([mhd])$")
_REMEMBERED_DAYS = 4096  # days whose working hours a calendar keeps (about eleven years)


class BusinessCalendar:
    def __init__(self, calendar: Calendar) -> None:
        self.zone = ZoneInfo(calendar.timezone)
        opens, closes = calendar.working_hours.split("-")
        self.opens = _parse_time(opens)
        self.closes_next_day = closes == "24:00"
        self.closes = time(0, 0) if self.closes_next_day else _parse_time(closes)
        self.days = {WEEKDAYS.index(d) for d in calendar.working_days}
        self.fixed_holidays = set(calendar.holidays)
        self.country = calendar.holiday_country
        base = datetime(2001, 1, 1)
        end = base.replace(hour=self.closes.hour, minute=self.closes.minute) + (timedelta(days=1) if self.closes_next_day else timedelta())
        self.day_length = end - base.replace(hour=self.opens.hour, minute=self.opens.minute)
        self._hours: dict[date, tuple[datetime, datetime] | None] = {}  # a day's working hours in UTC (None: closed), worked out once

    def public_holidays(self, year: int) -> frozenset[date]:
        """The public holidays of the calendar's country in ``year`` (none without a country); loaded once a process."""
        return public_holidays.dates(self.country.upper(), year) if self.country else frozenset()

    def is_working_day(self, day: date) -> bool:
        return day.weekday() in self.days and day not in self.fixed_holidays and not _is_public_holiday(self.country, day)

    def open_interval(self, day: date) -> tuple[datetime, datetime]:
        """The working hours of ``day`` (a local date) in UTC."""
        start = datetime.combine(day, self.opens, tzinfo=self.zone)
        end_day = day + timedelta(days=1) if self.closes_next_day else day
        end = datetime.combine(end_day, self.closes, tzinfo=self.zone)
        return start.astimezone(timezone.utc), end.astimezone(timezone.utc)

    def hours(self, day: date) -> tuple[datetime, datetime] | None:
        """``open_interval`` of ``day`` if it is a working day, else None; remembered (every SLA clock asks again)."""
        hours = self._hours.get(day, False)
        if hours is False:
            if len(self._hours) >= _REMEMBERED_DAYS:
                self._hours = {}
            hours = self._hours[day] = self.open_interval(day) if self.is_working_day(day) else None
        return hours  # type: ignore[return-value]

    def intervals(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Working intervals (UTC) from ``start`` on, clipped to begin no earlier than ``start``."""
        day = start.astimezone(self.zone).date() - timedelta(days=1)  # a day opening before midnight UTC may still run
        for _ in range(3660):  # ten years: a calendar with no working day at all ends here rather than looping
            hours = self.hours(day)
            if hours is not None and hours[1] > start:
                yield max(hours[0], start), hours[1]
            day += timedelta(days=1)

    def add(self, start: datetime, amount: timedelta) -> datetime:
        """The moment ``amount`` of business time after ``start``."""
        remaining = amount
        if remaining <= timedelta(0):
            return start
        for opens, closes in self.intervals(start):
            span = closes - opens
            if remaining <= span:
                return opens + remaining
            remaining -= span
        raise ValueError("the calendar has no working time in the next ten years")

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Business time between ``start`` and ``end`` (zero if end is not after start)."""
        total = timedelta(0)
        if end <= start:
            return total
        for opens, closes in self.intervals(start):
            if opens >= end:
                break
            total += min(closes, end) - opens
        return total

    def is_open(self, at: datetime) -> bool:
        day = at.astimezone(self.zone).date()
        for candidate in (day - timedelta(days=1), day):
            hours = self.hours(candidate)
            if hours is not None and hours[0] <= at < hours[1]:
                return True
        return False

    def duration(self, text: str) -> timedelta:
        """ "30m", "4h", "2d" (a day is this calendar's working day) as business time."""
        match = _DURATION.match(text.strip())
        if match is None:
            raise ValueError(f"not a duration: {text!r} (use 30m, 4h, 2d)")
        amount, unit = float(match.group(1)), match.group(2)
        if unit == "m":
            return timedelta(minutes=amount)
        if unit == "h":
            return timedelta(hours=amount)
        return self.day_length * amount


def _parse_time(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _is_public_holiday(country: str | None, day: date) -> bool:
    return bool(country) and day in public_holidays.dates(country.upper(), day.year)  # type: ignore[union-attr]
