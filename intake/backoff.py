"""How an intake adapter backs off after a transport failure: tenacity's strategies, one policy for IMAP and X.

``backoff(minimum, maximum, jitter)`` is the wait strategy: after the n-th
failure in a row the next attempt waits ``min(maximum, minimum × 2^(n−1))``
times ``uniform(1 − jitter, 1 + jitter)``, so adapters that lost the same
server do not all come back at the same moment.

Two ways to use it:

- a loop that may sleep (an IMAP folder watcher) retries with
  ``tenacity.Retrying(wait=backoff(…), stop=stop_when_event_set(stop),
  sleep=stop.wait)``: a shutdown ends the wait and the retrying;
- a loop that must not sleep (the X adapter schedules each stream's next poll
  instead) keeps a ``FailureStreak`` per stream: it counts the failures in a
  row the way tenacity does and asks the same strategy for the delay.
"""

from __future__ import annotations

from tenacity import RetryCallState, Retrying
from tenacity.wait import wait_base, wait_exponential, wait_random_exponential


def backoff(minimum: float, maximum: float, jitter: float = 0.5) -> wait_base:
    """Bounded exponential delays with proportional jitter: ``min(maximum, minimum × 2^(n−1)) × uniform(1 ± jitter)``.

    Written as tenacity's sum of a fixed part, ``(1 − jitter) × d``, and a random
    part, ``uniform(0, 2 × jitter × d)``, where ``d`` is the capped exponential delay.
    """
    fixed = wait_exponential(multiplier=minimum * (1 - jitter), max=maximum * (1 - jitter))
    spread = wait_random_exponential(multiplier=minimum * 2 * jitter, max=maximum * 2 * jitter)
    return fixed + spread


class FailureStreak:
    """The failures in a row of something retried on a schedule rather than by sleeping, and the delay each earns.

    ``failed(exc)`` records one more failure and returns how long to wait before
    the next attempt; ``succeeded()`` ends the streak, so the next failure waits
    the shortest delay again.
    """

    def __init__(self, wait: wait_base) -> None:
        self.wait = wait
        self._retrying = Retrying(wait=wait)
        self._state: RetryCallState | None = None

    @property
    def failures(self) -> int:
        return self._state.attempt_number if self._state is not None else 0

    def failed(self, exc: BaseException) -> float:
        if self._state is None:
            self._state = RetryCallState(self._retrying, fn=None, args=(), kwargs={})
        else:
            self._state.prepare_for_next_attempt()
        self._state.set_exception((type(exc), exc, exc.__traceback__))
        return float(self.wait(self._state))

    def delay_after(self, failures: int) -> float:
        """The delay the strategy gives after ``failures`` failures in a row, without recording them."""
        state = RetryCallState(self._retrying, fn=None, args=(), kwargs={})
        state.attempt_number = max(1, failures)
        return float(self.wait(state))

    def succeeded(self) -> None:
        self._state = None
