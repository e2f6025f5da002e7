"""Errors of the workers package.

How a side effect can fail, whatever the channel (the effects outbox reads these):

    EffectRefused                permanent: the outbox row fails with this message, visible to staff
    └── XSendRefused             X refused a reply (or it cannot be sent as asked)
    NotSent                      the channel certainly did not take the message: safe to send again
    RetryLater                   the far side asked us to wait: a delayed retry, never a sleeping thread
    └── XRateLimitedSend         X's rate limit on replies
    SlackError                   the Slack Web API (``outbound.slack``)
    ├── SlackUnavailable         network error, timeout or 5xx: try again later
    ├── SlackRateLimited         Slack's rate limit (also a RetryLater)
    └── SlackRefused             an error that retrying will not cure (also an EffectRefused)

Refusals of the desk's operations, each with a message a person can read:

    Forbidden                    the person may not do this action (``desk.permissions``)
    Refused                      a knowledge operation names something unknown or invalid
    PrivacyRefused               an export or erasure cannot be done as asked
    UnknownCanned                no canned reply by that name

And: ``ParentInFlight`` (a reply's parent is still queued: retry shortly), ``BatchUndone`` (a batch
stored without savepoints met a failure: it is stored again with them; never leaves the pipeline),
``GroupFailed`` (a row of effects done in one transaction failed: the others go again; never leaves the effects
actor) and ``DatasetError`` (a training file is malformed).
"""

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


class ParentInFlight(Exception):
    """A message this one replies to is queued but not stored yet: try again shortly."""


class BatchUndone(Exception):
    """A batch stored without savepoints met a failure: its transaction is undone, to be stored again with them."""


class DatasetError(ValueError):
    """A training or evaluation file is malformed; the message names the line."""


class UnknownCanned(LookupError):
    pass


class Forbidden(Exception):
    """The actor may not do this action; nothing was changed."""

    def __init__(self, action: str, actor: str | None, reason: str) -> None:
        super().__init__(reason)
        self.action = action
        self.actor = actor
        self.reason = reason


class Refused(Exception):
    """The request breaks a rule (unknown name, not a member, bad value): nothing was changed."""


class PrivacyRefused(Exception):
    """Not done: the actor may not, or there is no such person. Nothing was changed."""


class SlackError(Exception):
    """Base of the errors raised here."""


class SlackUnavailable(SlackError):
    """A network error or a server error: the outcome of the call is unknown; retry (the post is idempotent)."""


class XSendRefused(EffectRefused):
    """X refused the reply, or it cannot be sent as asked: retrying unchanged will not help."""


class XRateLimitedSend(RetryLater):
    """X's rate limit for posting or DMs: retry after the reset."""


class SlackRateLimited(SlackError, RetryLater):
    """Slack's rate limit: retry after the seconds its Retry-After header gives."""

    def __init__(self, retry_after: float) -> None:
        RetryLater.__init__(self, retry_after, f"Slack rate limit: retry after {retry_after:.0f} s")


class SlackRefused(SlackError, EffectRefused):
    """Slack answered with an error that retrying will not cure."""


class GroupFailed(Exception):
    """``Effects.run_together``: the row at ``index`` failed with ``error``, and the group's transaction was undone."""

    def __init__(self, index: int, error: BaseException) -> None:
        super().__init__(f"effect {index} of a group failed: {type(error).__name__}: {error}")
        self.index = index
        self.error = error
