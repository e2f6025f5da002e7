"""The intake adapters' backoff (tenacity's strategies): bounded, exponential, jittered, and a success starts it again."""

from __future__ import annotations

import pytest

from intake.backoff import FailureStreak, backoff


def _delays(streak: FailureStreak, failures: int) -> list[float]:
    return [streak.failed(OSError("connection refused")) for _ in range(failures)]


def test_each_failure_in_a_row_doubles_the_delay_within_the_jitter_up_to_the_maximum() -> None:
    # Given streaks backing off from 1 s up to 8 s with ±50 % jitter
    streaks = [FailureStreak(backoff(1.0, 8.0, jitter=0.5)) for _ in range(200)]

    # When each fails six times in a row
    runs = [_delays(streak, 6) for streak in streaks]

    # Then the n-th delay lies within ±50 % of min(8, 2^(n-1)) seconds
    expected = [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert all(0.5 * e <= d <= 1.5 * e for run in runs for d, e in zip(run, expected))


def test_the_jitter_spreads_the_delays() -> None:
    # Given many adapters that lost the same server at once
    firsts = [FailureStreak(backoff(1.0, 8.0, jitter=0.5)).failed(OSError("reset")) for _ in range(50)]

    # Then they do not all come back at the same moment
    assert len(set(firsts)) > 1


def test_without_jitter_the_delays_are_exact() -> None:
    # Given a streak without jitter
    streak = FailureStreak(backoff(0.5, 3.0, jitter=0.0))

    # When it fails four times, then the delays are 0.5, 1, 2 and (capped) 3 seconds
    assert _delays(streak, 4) == pytest.approx([0.5, 1.0, 2.0, 3.0])


def test_a_success_ends_the_streak() -> None:
    # Given a streak of three failures
    streak = FailureStreak(backoff(1.0, 60.0, jitter=0.0))
    _delays(streak, 3)

    # When the next attempt succeeds and a later one fails
    streak.succeeded()
    delay = streak.failed(OSError("reset"))

    # Then that failure waits the shortest delay again
    assert delay == pytest.approx(1.0)
    assert streak.failures == 1


def test_given_restarts_in_a_row_then_the_supervisors_wait_doubles_up_to_its_bound() -> None:
    # Given the supervisor's restart policy without jitter
    from intake.supervision import Backoff  # noqa: PLC0415

    restart = Backoff(1.0, 8.0, 0.0)

    # Then it waits 1, 2, 4 seconds after 0, 1, 2 restarts, and never more than 8
    assert [restart.delay(n) for n in (0, 1, 2)] == [1.0, 2.0, 4.0]
    assert restart.delay(40) == 8.0
