"""Errors of the intake package.

    IntakeError                  base of everything raised here
    ├── MessageDecodeError       a queued payload is not a valid InboundMessage (invalid input: never retried)
    ├── RejectedInput            raw input that cannot become a message; carries the reason (quarantined)
    └── SinkError                the queue could not take a message (transient: the source must retry)
"""

from __future__ import annotations


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
