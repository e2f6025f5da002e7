"""The demo's sample is dated into the current month, so that `helpdesk report --month` of today's month holds it."""

from __future__ import annotations

import email.utils
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ops.demo import SAMPLES, _date_of, dated_samples, demo_clock

UTC = timezone.utc


def test_given_a_sample_over_months_when_placed_on_the_fifth_then_it_lies_between_the_first_and_now_in_order() -> None:
    # Given mails spread from August to November, and today the 5th of December
    oldest, middle, newest = (datetime(2026, 8, 3, 9, tzinfo=UTC), datetime(2026, 9, 20, 12, tzinfo=UTC),
                              datetime(2026, 11, 20, 17, tzinfo=UTC))
    now = datetime(2026, 12, 5, 10, 30, tzinfo=UTC)

    # When they are placed
    place = demo_clock(oldest, newest, now)

    # Then the oldest is at the start of the month, the newest just before now, and the order is kept
    assert place(oldest) == datetime(2026, 12, 1, tzinfo=UTC)
    assert place(newest) == now - timedelta(minutes=5)
    assert place(oldest) < place(middle) < place(newest)


def test_given_the_first_hour_of_a_month_then_the_sample_takes_the_last_thirty_days() -> None:
    now = datetime(2027, 1, 1, 0, 20, tzinfo=UTC)
    place = demo_clock(datetime(2026, 8, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC), now)
    assert place(datetime(2026, 8, 1, tzinfo=UTC)) == now - timedelta(minutes=5) - timedelta(days=30)


def test_given_the_bundled_sample_when_dated_then_every_date_is_this_month_and_keeps_its_time_zone(tmp_path: Path) -> None:
    # Given the bundled sample and a day in the middle of a month
    now = datetime(2026, 12, 15, 8, tzinfo=UTC)

    # When it is dated
    target = dated_samples(SAMPLES, tmp_path / "samples", now)

    # Then each dated mail lies in December before now, with the offset its writer's client gave it
    for path in sorted(SAMPLES.glob("*.eml")):
        before, after = _date_of(path.read_bytes()), _date_of((target / path.name).read_bytes())
        if before is None:
            continue
        assert after is not None
        assert datetime(2026, 12, 1, tzinfo=UTC) <= after <= now
        assert after.utcoffset() == before.utcoffset()
        assert email.utils.format_datetime(after) in (target / path.name).read_text(errors="replace")
