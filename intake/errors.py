"""Errors of the intake package.

    IntakeError                  base of everything raised here
    ├── MessageDecodeError       a queued payload is not a valid InboundMessage (invalid input: never retried)
    ├── RejectedInput            raw input that cannot become a message; carries the reason (quarantined)
    └── SinkError                the queue could not take a message (transient: the source must retry)
    InvalidEnquiry               the web form or API sent an enquiry that cannot be accepted (a ValueError)
    XError                       the X API client (``x_api``)
    ├── XUnavailable             network error, timeout, 5xx or an undocumented answer: try again later
    ├── XRateLimited             429: carries ``reset_at`` (epoch seconds)
    └── XRefused                 any other 4xx: the same call will fail again
"""

from __future__ import annotations

from datetime import datetime, timezone


class IntakeError(Exception):
    """Base class of intake errors."""


class MessageDecodeError(IntakeError):
    """A payload could not be decoded into an InboundMessage."""


class RejectedInput(IntakeError):
    """Raw input that cannot become an InboundMessage; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class SinkError(IntakeError):
    """The queue did not durably accept a message; nothing may be acknowledged upstream."""


class InvalidEnquiry(ValueError):
    """The fields do not make an enquiry; ``problems`` maps each field to what is wrong with it."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in problems.items()))
        self.problems = problems


class XError(Exception):
    """Base of the errors raised here."""


class XUnavailable(XError):
    """A network error, a timeout or a server error: the outcome of the call is unknown."""


class XRateLimited(XError):
    def __init__(self, method: str, reset_at: float) -> None:
        super().__init__(f"{method}: rate limited until {datetime.fromtimestamp(reset_at, timezone.utc):%H:%M:%S} UTC")
        self.method = method
        self.reset_at = reset_at


class XRefused(XError):
    """X refused the call (4xx other than 429): retrying it unchanged will not help."""

    def __init__(self, message: str, status: int, codes: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.codes = codes
