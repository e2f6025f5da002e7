"""Errors of the ops package.

    TooLarge                    a request to the Slack endpoints is over its size bound
"""

from __future__ import annotations


class TooLarge(Exception):
    pass
