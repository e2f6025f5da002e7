"""Errors of the web package.

    NotSignedIn                 the page needs a signed-in person: the answer is a redirect to /login
    ApiError                    a JSON API call fails; carries the response to send
    WeakPassword                a password does not meet the rules (a ValueError)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.responses import Response


class NotSignedIn(Exception):
    """The page needs a signed-in person; the answer is a redirect to /login."""


class ApiError(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


class WeakPassword(ValueError):
    """The password does not meet the rules; the message says which."""
