"""Desk operations on the knowledge of implementations, shared by the command line and Slack (and the web).

Each operation checks who acts (a member of the teams file) and every name against the
desk's configuration (standards, the stage ladder, engagement kinds, sectors) before
storage records anything, so a refused request changes nothing. The rules live here
once; the surfaces only parse and print.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import Engine

from config.desk import DeskConfig
from storage import audit
from storage import knowledge as store
from storage.knowledge import EngagementRecord, ImplementationRecord, OrganisationDetail, OrganisationRecord, TicketBrief
from workers.desk.permissions import Staff
from workers.errors import Forbidden, Refused

ENGAGEMENT_STATUSES = ("requested", "in_progress", "delivered", "cancelled")
MAX_HOURS = 10_000.0
_DOMAIN = re.compile(r"^(?=.{3,255}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_COUNTRY = re.compile(r"^[A-Za-z]{2}$")


@dataclass(frozen=True)
class OrganisationChange:
    organisation: OrganisationRecord
    implementation: ImplementationRecord | None
    stage_changed: bool
    created: bool


@dataclass(frozen=True)
class Suggestion:
    ticket: TicketBrief
    kind: str


class Knowledge:
    """The operations; ``engine`` is the desk's database, ``desk`` its configuration."""

    def __init__(self, engine: Engine, desk: DeskConfig, surface: str = "cli") -> None:
        self.engine = engine
        self.desk = desk
        self.config = desk.implementations
        self.staff = Staff(desk)
        self.surface = surface

    # -- checks --------------------------------------------------------------------------
    def authorise(self, by: str | None, action: str, target: str = "") -> str:
        """The key of whoever acts, if they may; a refusal is recorded in the audit log (who tried what) and raised."""
        try:
            return self.staff.authorise(by, action).key
        except Forbidden as exc:
            audit.record(self.engine, f"refused:{self.surface}:{by}:{action}:{uuid.uuid4().hex}", actor=by or "nobody",
                         surface=self.surface, action=action, target=target, outcome="refused", detail={"reason": exc.reason})
            raise Refused(exc.reason) from exc

    def person(self, key: str) -> str:
        """A person named as owner: anyone on the desk."""
        if self.staff.get(key) is None:
            raise Refused(f"{key} is not a member of any team (members: {', '.join(sorted(self.staff.keys()))})")
        return key

    def _one_of(self, what: str, value: str, allowed: tuple[str, ...] | list[str]) -> str:
        if value not in allowed:
            raise Refused(f"unknown {what} {value!r} (one of: {', '.join(allowed)})")
        return value

    def standard(self, value: str | None) -> str:
        standards = tuple(self.config.standards)
        if value is None:
            if len(standards) == 1:
                return standards[0]
            raise Refused(f"name the standard with --standard (one of: {', '.join(standards)})")
        return self._one_of("standard", value.lower(), standards)

    @staticmethod
    def domain(value: str) -> str:
        domain = value.strip().lower().removeprefix("@").rstrip(".")
        if not _DOMAIN.match(domain):
            raise Refused(f"{value!r} is not a domain name (for example: hacienda.gob.example)")
        return domain

    @staticmethod
    def url(value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc or len(value) > 2000:
            raise Refused(f"{value!r} is not an http(s) URL")
        return value.strip()

    @staticmethod
    def hours(value: float | None) -> float | None:
        if value is not None and not (0 <= value <= MAX_HOURS):
            raise Refused(f"hours must be between 0 and {MAX_HOURS:g}")
        return value

    # -- organisations -----------------------------------------------------------------------
    def set_organisation(
        self, domain: str, *, by: str | None, name: str | None = None, sector: str | None = None, country: str | None = None,
        standard: str | None = None, stage: str | None = None, urls: tuple[str, ...] = (), notes: str | None = None,
        add_domains: tuple[str, ...] = (),
    ) -> OrganisationChange:
        """Create or update an organisation; with ``stage``, move its implementation of ``standard`` (recorded with who and when)."""
        actor = self.authorise(by, "org.set", domain)
        domain = self.domain(domain)
        extra = tuple(self.domain(d) for d in add_domains)
        if sector is not None:
            self._one_of("sector", sector, tuple(self.desk.taxonomy.sectors))
        if country is not None and not _COUNTRY.match(country):
            raise Refused(f"country {country!r} must be a two-letter ISO 3166 code (e.g. MX)")
        if name is not None and not (0 < len(name.strip()) <= 255):
            raise Refused("the name must be 1 to 255 characters")
        links = tuple(self.url(u) for u in urls)
        if (urls or notes is not None) and stage is None and standard is None:
            raise Refused("--url and --notes belong to an implementation: name --standard (and --stage for a new one)")
        impl_standard = self.standard(standard) if (stage is not None or standard is not None) else None
        if stage is not None:
            self._one_of("stage", stage, self.config.stages)
        existed = store.find_organisation(self.engine, domain) is not None
        org = store.save_organisation(self.engine, domain, by=actor, name=name.strip() if name else None, sector=sector,
                                      country=country.upper() if country else None, add_domains=extra)
        impl, changed = None, False
        if impl_standard is not None:
            current = next((i for i in self._implementations(org.domain) if i.standard == impl_standard), None)
            target = stage or (current.stage if current else None)
            if target is None:
                raise Refused(f"{org.domain} has no {impl_standard} implementation yet: give its --stage")
            impl, changed = store.set_stage(self.engine, org.id, impl_standard, target, by=actor, urls=links, notes=notes)
        return OrganisationChange(org, impl, changed, created=not existed)

    def _implementations(self, domain: str) -> tuple[ImplementationRecord, ...]:
        detail = store.organisation_detail(self.engine, domain, ticket_limit=0)
        return detail.implementations if detail is not None else ()

    def organisation(self, domain: str) -> OrganisationDetail:
        detail = store.organisation_detail(self.engine, self.domain(domain))
        if detail is None:
            raise Refused(f"no organisation with the domain {domain!r}")
        return detail

    def suggestions(self, detail: OrganisationDetail) -> list[Suggestion]:
        """Tickets whose type usually leads to an engagement, not yet linked to one: shown to staff, never acted on."""
        kinds = self.config.suggest
        tickets = store.tickets_without_engagement(self.engine, detail.organisation.id, tuple(kinds))
        return [Suggestion(t, kinds[t.type]) for t in tickets if t.type in kinds]



    # -- engagements ----------------------------------------------------------------------
    def add_engagement(
        self, domain: str, kind: str, *, by: str | None, owner: str | None = None, hours: float = 0.0, link: str | None = None,
        note: str = "", tickets: tuple[int, ...] = (), status: str = "requested", key: str | None = None,
    ) -> tuple[EngagementRecord, bool]:
        """Record work for an organisation (created if the desk did not know it), linked to the tickets it came from."""
        actor = self.authorise(by, "engagement.add", domain)
        self._one_of("engagement kind", kind, self.config.engagement_kinds)
        self._one_of("status", status, ENGAGEMENT_STATUSES)
        owner_key = self.person(owner) if owner is not None else actor
        self.hours(hours)
        link = self.url(link) if link else None
        if len(note) > 10_000:
            raise Refused("the note is longer than 10,000 characters")
        missing = store.missing_tickets(self.engine, tickets)
        if missing:
            raise Refused(f"no ticket {', '.join(map(str, missing))}")
        org = store.save_organisation(self.engine, self.domain(domain), by=actor)
        try:
            return store.add_engagement(self.engine, org.id, kind, by=actor, owner=owner_key, hours=hours, link=link, note=note,
                                        tickets=tuple((t, "origin") for t in tickets), key=key, status=status)
        except store.KnowledgeError as exc:
            raise Refused(str(exc)) from exc

    def update_engagement(
        self, engagement_id: int, *, by: str | None, status: str | None = None, hours: float | None = None,
        add_hours: float | None = None, owner: str | None = None, link: str | None = None, note: str | None = None,
        tickets: tuple[int, ...] = (),
    ) -> EngagementRecord:
        self.authorise(by, "engagement.update", str(engagement_id))
        if status is not None:
            self._one_of("status", status, ENGAGEMENT_STATUSES)
        self.hours(hours)
        self.hours(add_hours)
        if owner is not None:
            self.person(owner)
        try:
            return store.update_engagement(self.engine, engagement_id, status=status, hours=hours, add_hours=add_hours, owner=owner,
                                           link=self.url(link) if link else None, note=note,
                                           tickets=tuple((t, "produced") for t in tickets))
        except store.KnowledgeError as exc:
            raise Refused(str(exc)) from exc
