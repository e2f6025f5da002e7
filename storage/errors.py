"""Errors of the storage package.

    LostRace                     another worker stored the same key first: the caller reads theirs
    KnowledgeError               a knowledge record names something unknown or invalid
    UnknownTicket                no ticket by that number (a LookupError)
"""

from __future__ import annotations


class UnknownTicket(LookupError):
    """No ticket has that number."""


class KnowledgeError(Exception):
    """A request the records cannot satisfy (no such organisation, engagement or ticket)."""


class LostRace(Exception):
    """Another transaction stored the same (channel, external_id) first; roll back and look again."""
