"""Who may do what on the desk: one table of actions and the roles allowed each, used by every surface.

People are the members of the teams file (role ``member``, plus ``lead`` for leads, plus
any roles listed) and its ``staff`` (managers, operators, admins outside the teams).
Slack actions and commands, the command line's ``--by`` and the web all ask
``Staff.authorise`` before a desk operation runs; a refusal raises ``Forbidden`` and
changes nothing. Corrections become training data only when they pass this check.
"""

from __future__ import annotations

from dataclasses import dataclass

from config.desk import DeskConfig
from workers.errors import Forbidden

DESK_WORK = frozenset({"member", "lead", "admin"})
KNOWLEDGE_WORK = frozenset({"member", "lead", "manager", "admin"})
ACTIONS: dict[str, frozenset[str]] = {
    # working tickets
    "claim": DESK_WORK,
    "reply": DESK_WORK,
    "note": DESK_WORK | {"manager"},
    "canned": DESK_WORK,
    "reclassify": DESK_WORK,
    "pending": DESK_WORK,
    "resolve": DESK_WORK,
    "reopen": DESK_WORK,
    "assign": DESK_WORK,  # pass a ticket to a colleague (assigning to oneself is claiming)
    "view": DESK_WORK | {"manager", "operator"},
    # knowledge of implementations
    "org.set": KNOWLEDGE_WORK,
    "contact.link": KNOWLEDGE_WORK,  # merge two contacts that are one person
    "engagement.add": KNOWLEDGE_WORK,
    "engagement.update": KNOWLEDGE_WORK,
    # management information and operations
    "report": frozenset({"member", "lead", "manager", "admin"}),
    "ops.view": frozenset({"operator", "admin", "lead"}),
    "dlq.replay": frozenset({"operator", "admin"}),
    "dlq.purge": frozenset({"operator", "admin"}),
    # people's data and access
    "privacy.export": frozenset({"admin"}),
    "privacy.erase": frozenset({"admin"}),
    "staff.admin": frozenset({"admin"}),
}


@dataclass(frozen=True)
class Actor:
    key: str
    name: str
    roles: frozenset[str]
    slack_user: str | None = None
    email: str | None = None


class Staff:
    """The desk's people and their roles, read once from the teams file."""

    def __init__(self, desk: DeskConfig) -> None:
        self._people: dict[str, Actor] = {}
        people = [m for team in desk.teams.teams.values() for m in team.members] + list(desk.teams.staff)
        for person in people:
            known = self._people.get(person.key)
            roles = person.all_roles | (known.roles if known else frozenset())
            self._people[person.key] = Actor(person.key, person.name, roles, person.slack_user, person.email)
        self._by_slack = {a.slack_user: a for a in self._people.values() if a.slack_user}

    def get(self, key: str | None) -> Actor | None:
        return self._people.get(key) if key else None

    def by_slack_user(self, user_id: str | None) -> Actor | None:
        return self._by_slack.get(user_id) if user_id else None

    def keys(self) -> frozenset[str]:
        return frozenset(self._people)

    def authorise(self, actor: str | None, action: str) -> Actor:
        """The actor, if they may do ``action``; raises Forbidden otherwise (unknown people and unknown actions too)."""
        allowed = ACTIONS.get(action)
        if allowed is None:
            raise Forbidden(action, actor, f"{action!r} is not a desk action")
        person = self.get(actor)
        if person is None:
            raise Forbidden(action, actor, f"{actor or 'nobody'} is not on the desk (a member or staff of the teams file)")
        if not person.roles & allowed:
            raise Forbidden(action, actor, f"{person.key} ({', '.join(sorted(person.roles))}) may not {action.replace('.', ' ')}: "
                                           f"it needs one of the roles {', '.join(sorted(allowed))}")
        return person

    def may(self, actor: str | None, action: str) -> bool:
        try:
            self.authorise(actor, action)
        except Forbidden:
            return False
        return True
