"""How a side effect can fail, whatever the channel: refused for good, or to be retried later."""

from __future__ import annotations


class EffectRefused(Exception):
    """Permanent: the outbox row fails with this message, visible to staff; retrying would not help."""


class NotSent(Exception):
    """The channel certainly did not take the message (refused a connection, a temporary 4xx before
    the content went over): safe to send again on the next attempt, unlike a failure mid-send."""


class RetryLater(Exception):
    """The far side asked us to wait (a rate limit): a delayed retry, never a sleeping thread."""

    def __init__(self, retry_after: float, message: str = "") -> None:
        super().__init__(message or f"retry after {retry_after:.0f} s")
        self.retry_after = retry_after
