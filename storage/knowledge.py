"""Knowledge of implementations: organisations, their implementations of a standard and the desk's engagements.

Repository functions: domain values in, domain values out; the only SQL about these
tables. Validation of names against the desk's configuration (stages, kinds,
standards, sectors) and permissions belong to the desk operations that call these.

- An organisation is found by its first domain (``organisation.domain``) or any further
  one (``organisation_domain``). Adding a further domain that intake had already made an
  organisation of folds that organisation (its tickets and contacts) into this one.
- A stage change is recorded only when the stage changes, so setting a stage twice is harmless.
- ``add_engagement`` with a ``key`` is idempotent: the same key returns the engagement made first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, select, update

from storage.models import (CONTACT, ENGAGEMENT, ENGAGEMENT_TICKET, IDENTITY, IMPLEMENTATION, ORG_DOMAIN, ORGANISATION,
                            STAGE_CHANGE, TICKET, utcnow)
from storage.upsert import on_conflict
from storage.errors import KnowledgeError

ORG = ORGANISATION
IMPL = IMPLEMENTATION
STAGE = STAGE_CHANGE
ENG = ENGAGEMENT
ENG_TICKET = ENGAGEMENT_TICKET
OPEN_STATUSES = ("new", "open", "pending")


@dataclass(frozen=True)
class OrganisationRecord:
    id: int
    domain: str
    name: str | None
    sector: str | None
    country: str | None
    added_by: str | None
    created_at: datetime
    domains: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "domain": self.domain, "domains": list(self.domains), "name": self.name, "sector": self.sector,
                "country": self.country, "added_by": self.added_by, "created_at": self.created_at}


@dataclass(frozen=True)
class ImplementationRecord:
    id: int
    organisation_id: int
    standard: str
    stage: str
    stage_since: datetime
    urls: tuple[str, ...]
    notes: str

    def to_dict(self) -> dict[str, Any]:
        return {"standard": self.standard, "stage": self.stage, "stage_since": self.stage_since, "urls": list(self.urls),
                "notes": self.notes}


@dataclass(frozen=True)
class EngagementRecord:
    id: int
    organisation_id: int
    domain: str
    kind: str
    status: str
    owner: str | None
    hours: float
    link: str | None
    note: str
    created_by: str
    requested_at: datetime
    started_at: datetime | None
    delivered_at: datetime | None
    tickets: tuple[tuple[int, str], ...] = ()  # (ticket id, origin | produced)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "organisation": self.domain, "kind": self.kind, "status": self.status, "owner": self.owner,
                "hours": self.hours, "link": self.link, "note": self.note, "created_by": self.created_by,
                "requested_at": self.requested_at, "started_at": self.started_at, "delivered_at": self.delivered_at,
                "tickets": [{"ticket": t, "relation": r} for t, r in self.tickets]}


@dataclass(frozen=True)
class StageChangeRecord:
    standard: str
    from_stage: str | None
    to_stage: str
    by: str
    at: datetime


@dataclass(frozen=True)
class PersonRecord:
    contact_id: int
    name: str
    identities: tuple[tuple[str, str], ...]  # (channel, address)


@dataclass(frozen=True)
class TicketBrief:
    id: int
    subject: str
    type: str
    status: str
    channel: str
    created_at: datetime
    resolved_at: datetime | None


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    what: str  # ticket_opened | ticket_resolved | engagement_requested | engagement_delivered | stage_change
    detail: str
    ref: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at, "what": self.what, "detail": self.detail, "ref": self.ref}


@dataclass(frozen=True)
class OrganisationSummary:
    organisation: OrganisationRecord
    implementations: tuple[ImplementationRecord, ...]
    open_tickets: int
    tickets: int
    engagements: int


@dataclass(frozen=True)
class OrganisationDetail:
    organisation: OrganisationRecord
    implementations: tuple[ImplementationRecord, ...]
    people: tuple[PersonRecord, ...]
    tickets: tuple[TicketBrief, ...]
    engagements: tuple[EngagementRecord, ...]
    stage_changes: tuple[StageChangeRecord, ...]
    timeline: tuple[TimelineEntry, ...] = field(default=())


# -- organisations -----------------------------------------------------------------------
def _org_id(c: Connection, domain: str) -> int | None:
    found = c.execute(select(ORG.c.id).where(ORG.c.domain == domain)).scalar()
    if found is None:
        found = c.execute(select(ORG_DOMAIN.c.organisation_id).where(ORG_DOMAIN.c.domain == domain)).scalar()
    return found


def _org_record(c: Connection, org_id: int) -> OrganisationRecord:
    row = c.execute(select(ORG).where(ORG.c.id == org_id)).one()
    extra = tuple(c.execute(select(ORG_DOMAIN.c.domain).where(ORG_DOMAIN.c.organisation_id == org_id).order_by(ORG_DOMAIN.c.domain)).scalars())
    return OrganisationRecord(id=row.id, domain=row.domain, name=row.name, sector=row.sector, country=row.country,
                              added_by=row.added_by, created_at=row.created_at, domains=(row.domain, *extra))


def find_organisation(engine: Engine, domain: str) -> OrganisationRecord | None:
    """The organisation with ``domain`` as its first or a further domain."""
    with engine.connect() as c:
        org_id = _org_id(c, domain.lower())
        return _org_record(c, org_id) if org_id is not None else None


def save_organisation(engine: Engine, domain: str, *, by: str, name: str | None = None, sector: str | None = None,
                      country: str | None = None, add_domains: tuple[str, ...] = ()) -> OrganisationRecord:
    """Create the organisation of ``domain`` if there is none, then set the fields given (None leaves one as it is)."""
    domain = domain.lower()
    at = utcnow()
    with engine.begin() as c:
        org_id = _org_id(c, domain)
        if org_id is None:
            org_id = c.execute(
                on_conflict(c, ORG, ["domain"], returning=ORG.c.id).values(domain=domain, name=name, sector=sector, country=country,
                                                                           added_by=by, created_at=at, updated_at=at)
            ).scalar() or _org_id(c, domain)
        values = {k: v for k, v in (("name", name), ("sector", sector), ("country", country)) if v is not None}
        if values:
            c.execute(update(ORG).where(ORG.c.id == org_id).values(**values, updated_at=at))
        for extra in add_domains:
            _add_domain(c, org_id, extra.lower(), at)
        return _org_record(c, org_id)


def _add_domain(c: Connection, org_id: int, domain: str, at: datetime) -> None:
    other = _org_id(c, domain)
    if other == org_id:
        return
    if other is not None:
        _fold(c, other, org_id)
    c.execute(on_conflict(c, ORG_DOMAIN, ["domain"]).values(domain=domain, organisation_id=org_id, created_at=at))


def _fold(c: Connection, source: int, target: int) -> None:
    """Move everything of organisation ``source`` (made by intake from a further domain) to ``target``."""
    for table in (TICKET, CONTACT, ENG, STAGE):
        c.execute(update(table).where(table.c.organisation_id == source).values(organisation_id=target))
    for row in c.execute(select(IMPL).where(IMPL.c.organisation_id == source)).all():
        clash = c.execute(select(IMPL.c.id).where(IMPL.c.organisation_id == target, IMPL.c.standard == row.standard)).scalar()
        if clash is None:
            c.execute(update(IMPL).where(IMPL.c.id == row.id).values(organisation_id=target))
        else:
            c.execute(update(STAGE).where(STAGE.c.implementation_id == row.id).values(implementation_id=clash))
            c.execute(delete(IMPL).where(IMPL.c.id == row.id))
    c.execute(update(ORG_DOMAIN).where(ORG_DOMAIN.c.organisation_id == source).values(organisation_id=target))
    c.execute(delete(ORG).where(ORG.c.id == source))




# -- implementations -----------------------------------------------------------------------
def _impl_record(row: Any) -> ImplementationRecord:
    return ImplementationRecord(id=row.id, organisation_id=row.organisation_id, standard=row.standard, stage=row.stage,
                                stage_since=row.stage_since, urls=tuple(row.urls or ()), notes=row.notes or "")


def set_stage(engine: Engine, org_id: int, standard: str, stage: str, *, by: str, at: datetime | None = None,
              urls: tuple[str, ...] = (), notes: str | None = None) -> tuple[ImplementationRecord, bool]:
    """Put the organisation's implementation of ``standard`` at ``stage``; True when the stage changed (and was recorded)."""
    at = at or utcnow()
    with engine.begin() as c:
        row = c.execute(select(IMPL).where(IMPL.c.organisation_id == org_id, IMPL.c.standard == standard)).one_or_none()
        if row is None:
            c.execute(on_conflict(c, IMPL, ["organisation_id", "standard"]).values(
                organisation_id=org_id, standard=standard, stage=stage, stage_since=at, urls=list(urls), notes=notes or "",
                created_at=at, updated_at=at))
            row = c.execute(select(IMPL).where(IMPL.c.organisation_id == org_id, IMPL.c.standard == standard)).one()
            previous = None
            changed = True
        else:
            previous = row.stage
            changed = row.stage != stage
        values: dict[str, Any] = {"updated_at": at}
        if changed and previous is not None:
            values.update(stage=stage, stage_since=at)
        if urls:
            values["urls"] = list(dict.fromkeys([*(row.urls or []), *urls]))
        if notes is not None:
            values["notes"] = notes
        c.execute(update(IMPL).where(IMPL.c.id == row.id).values(**values))
        if changed:
            c.execute(STAGE.insert().values(implementation_id=row.id, organisation_id=org_id, standard=standard,
                                            from_stage=previous, to_stage=stage, by=by, at=at))
        return _impl_record(c.execute(select(IMPL).where(IMPL.c.id == row.id)).one()), changed


def _implementations(c: Connection, org_ids: list[int]) -> dict[int, list[ImplementationRecord]]:
    found: dict[int, list[ImplementationRecord]] = {}
    if not org_ids:
        return found
    for row in c.execute(select(IMPL).where(IMPL.c.organisation_id.in_(org_ids)).order_by(IMPL.c.standard)):
        found.setdefault(row.organisation_id, []).append(_impl_record(row))
    return found


def list_organisations(engine: Engine, *, stage: str | None = None, standard: str | None = None,
                       with_implementation_only: bool = False) -> list[OrganisationSummary]:
    """Organisations (with their implementations and counts), most tickets first; filtered by stage and/or standard."""
    with engine.connect() as c:
        query = select(ORG.c.id)
        if stage or standard or with_implementation_only:
            conditions = [IMPL.c.organisation_id == ORG.c.id]
            if stage:
                conditions.append(IMPL.c.stage == stage)
            if standard:
                conditions.append(IMPL.c.standard == standard)
            query = query.where(select(IMPL.c.id).where(*conditions).exists())
        ids = list(c.execute(query).scalars())
        tickets = _counts(c, select(TICKET.c.organisation_id, func.count()).where(TICKET.c.organisation_id.in_(ids)).group_by(TICKET.c.organisation_id))
        open_ = _counts(c, select(TICKET.c.organisation_id, func.count()).where(
            TICKET.c.organisation_id.in_(ids), TICKET.c.status.in_(OPEN_STATUSES)).group_by(TICKET.c.organisation_id))
        engagements = _counts(c, select(ENG.c.organisation_id, func.count()).where(ENG.c.organisation_id.in_(ids)).group_by(ENG.c.organisation_id))
        impls = _implementations(c, ids)
        summaries = [OrganisationSummary(_org_record(c, i), tuple(impls.get(i, ())), open_.get(i, 0), tickets.get(i, 0),
                                         engagements.get(i, 0)) for i in ids]
    return sorted(summaries, key=lambda s: (-s.tickets, -s.engagements, s.organisation.domain))


def _counts(c: Connection, query: Any) -> dict[int, int]:
    return {int(k): int(n) for k, n in c.execute(query)}


# -- engagements ---------------------------------------------------------------------------
def _engagement(c: Connection, engagement_id: int) -> EngagementRecord:
    row = c.execute(select(ENG, ORG.c.domain).join(ORG, ORG.c.id == ENG.c.organisation_id).where(ENG.c.id == engagement_id)).one_or_none()
    if row is None:
        raise KnowledgeError(f"no engagement {engagement_id}")
    tickets = tuple((t, r) for t, r in c.execute(
        select(ENG_TICKET.c.ticket_id, ENG_TICKET.c.relation).where(ENG_TICKET.c.engagement_id == engagement_id).order_by(ENG_TICKET.c.ticket_id)))
    return EngagementRecord(id=row.id, organisation_id=row.organisation_id, domain=row.domain, kind=row.kind, status=row.status,
                            owner=row.owner, hours=float(row.hours or 0), link=row.link, note=row.note or "",
                            created_by=row.created_by, requested_at=row.requested_at, started_at=row.started_at,
                            delivered_at=row.delivered_at, tickets=tickets)


def add_engagement(engine: Engine, org_id: int, kind: str, *, by: str, owner: str | None = None, hours: float = 0.0,
                   link: str | None = None, note: str = "", tickets: tuple[tuple[int, str], ...] = (), key: str | None = None,
                   status: str = "requested", at: datetime | None = None) -> tuple[EngagementRecord, bool]:
    """Record an engagement; (the engagement, True) — or (the one recorded earlier under ``key``, False)."""
    at = at or utcnow()
    with engine.begin() as c:
        for ticket_id, _relation in tickets:
            if c.execute(select(TICKET.c.id).where(TICKET.c.id == ticket_id)).scalar() is None:
                raise KnowledgeError(f"no ticket {ticket_id}")
        values = dict(key=key, organisation_id=org_id, kind=kind, status=status, owner=owner, hours=hours, link=link, note=note,
                      created_by=by, requested_at=at, updated_at=at,
                      started_at=at if status in ("in_progress", "delivered") else None,
                      delivered_at=at if status == "delivered" else None)
        new_id = c.execute(on_conflict(c, ENG, ["key"], returning=ENG.c.id).values(**values)).scalar()
        if new_id is None:  # recorded before under this key
            return _engagement(c, c.execute(select(ENG.c.id).where(ENG.c.key == key)).scalar_one()), False
        for ticket_id, relation in tickets:
            c.execute(on_conflict(c, ENG_TICKET, ["engagement_id", "ticket_id"]).values(engagement_id=new_id, ticket_id=ticket_id,
                                                                                       relation=relation))
        return _engagement(c, new_id), True


def update_engagement(engine: Engine, engagement_id: int, *, status: str | None = None, hours: float | None = None,
                      add_hours: float | None = None, owner: str | None = None, link: str | None = None, note: str | None = None,
                      tickets: tuple[tuple[int, str], ...] = (), at: datetime | None = None) -> EngagementRecord:
    """Change an engagement; a status change stamps when work started and when it was delivered (once)."""
    at = at or utcnow()
    with engine.begin() as c:
        current = _engagement(c, engagement_id)
        values: dict[str, Any] = {"updated_at": at}
        if status is not None and status != current.status:
            values["status"] = status
            if status in ("in_progress", "delivered") and current.started_at is None:
                values["started_at"] = at
            if status == "delivered" and current.delivered_at is None:
                values["delivered_at"] = at
        if hours is not None:
            values["hours"] = hours
        if add_hours is not None:
            values["hours"] = ENG.c.hours + add_hours
        values.update({k: v for k, v in (("owner", owner), ("link", link), ("note", note)) if v is not None})
        c.execute(update(ENG).where(ENG.c.id == engagement_id).values(**values))
        for ticket_id, relation in tickets:
            if c.execute(select(TICKET.c.id).where(TICKET.c.id == ticket_id)).scalar() is None:
                raise KnowledgeError(f"no ticket {ticket_id}")
            c.execute(on_conflict(c, ENG_TICKET, ["engagement_id", "ticket_id"]).values(engagement_id=engagement_id, ticket_id=ticket_id,
                                                                                       relation=relation))
        return _engagement(c, engagement_id)


def list_engagements(engine: Engine, *, org_id: int | None = None, kind: str | None = None, status: str | None = None,
                     owner: str | None = None) -> list[EngagementRecord]:
    with engine.connect() as c:
        conditions = [column == value for column, value in ((ENG.c.organisation_id, org_id), (ENG.c.kind, kind),
                                                            (ENG.c.status, status), (ENG.c.owner, owner)) if value is not None]
        ids = c.execute(select(ENG.c.id).where(*conditions).order_by(ENG.c.requested_at.desc(), ENG.c.id.desc())).scalars().all()
        return [_engagement(c, i) for i in ids]


def engagement(engine: Engine, engagement_id: int) -> EngagementRecord:
    with engine.connect() as c:
        return _engagement(c, engagement_id)


# -- one organisation, whole ----------------------------------------------------------------
def organisation_detail(engine: Engine, domain: str, *, ticket_limit: int = 50) -> OrganisationDetail | None:
    """The organisation with its implementations, people, tickets, engagements, stage changes and one timeline."""
    with engine.connect() as c:
        org_id = _org_id(c, domain.lower())
        if org_id is None:
            return None
        org = _org_record(c, org_id)
        impls = tuple(_implementations(c, [org_id]).get(org_id, ()))
        people = _people(c, org_id)
        tickets = tuple(TicketBrief(id=r.id, subject=r.subject, type=r.type, status=r.status, channel=r.channel,
                                    created_at=r.created_at, resolved_at=r.resolved_at)
                        for r in c.execute(select(TICKET).where(TICKET.c.organisation_id == org_id)
                                           .order_by(TICKET.c.created_at.desc()).limit(ticket_limit)))
        engagements = tuple(_engagement(c, i) for i in c.execute(
            select(ENG.c.id).where(ENG.c.organisation_id == org_id).order_by(ENG.c.requested_at.desc())).scalars())
        changes = tuple(StageChangeRecord(standard=r.standard, from_stage=r.from_stage, to_stage=r.to_stage, by=r.by, at=r.at)
                        for r in c.execute(select(STAGE).where(STAGE.c.organisation_id == org_id).order_by(STAGE.c.at.desc(), STAGE.c.id.desc())))
    return OrganisationDetail(org, impls, people, tickets, engagements, changes, _timeline(tickets, engagements, changes))


def _people(c: Connection, org_id: int) -> tuple[PersonRecord, ...]:
    people: dict[int, tuple[str, list[tuple[str, str]]]] = {}
    rows = c.execute(select(CONTACT.c.id, CONTACT.c.display_name, IDENTITY.c.channel, IDENTITY.c.address)
                     .join(IDENTITY, IDENTITY.c.contact_id == CONTACT.c.id)
                     .where(CONTACT.c.organisation_id == org_id).order_by(CONTACT.c.id, IDENTITY.c.channel, IDENTITY.c.address))
    for contact_id, name, channel, address in rows:
        people.setdefault(contact_id, (name or "", []))[1].append((channel, address))
    return tuple(PersonRecord(k, name, tuple(ids)) for k, (name, ids) in people.items())


def _timeline(tickets: tuple[TicketBrief, ...], engagements: tuple[EngagementRecord, ...],
              changes: tuple[StageChangeRecord, ...]) -> tuple[TimelineEntry, ...]:
    entries: list[TimelineEntry] = []
    for t in tickets:
        entries.append(TimelineEntry(t.created_at, "ticket_opened", f"{t.type}: {t.subject}", str(t.id)))
        if t.resolved_at is not None:
            entries.append(TimelineEntry(t.resolved_at, "ticket_resolved", t.subject, str(t.id)))
    for e in engagements:
        entries.append(TimelineEntry(e.requested_at, "engagement_requested", e.kind, str(e.id)))
        if e.delivered_at is not None:
            entries.append(TimelineEntry(e.delivered_at, "engagement_delivered", f"{e.kind} ({e.hours:g} h)", str(e.id)))
    for s in changes:
        entries.append(TimelineEntry(s.at, "stage_change", f"{s.standard}: {s.from_stage or '—'} → {s.to_stage} by {s.by}"))
    return tuple(sorted(entries, key=lambda e: e.at, reverse=True))


def missing_tickets(engine: Engine, ticket_ids: tuple[int, ...]) -> list[int]:
    """Which of ``ticket_ids`` do not exist."""
    if not ticket_ids:
        return []
    with engine.connect() as c:
        found = set(c.execute(select(TICKET.c.id).where(TICKET.c.id.in_(ticket_ids))).scalars())
    return [t for t in ticket_ids if t not in found]


def tickets_without_engagement(engine: Engine, org_id: int, types: tuple[str, ...]) -> list[TicketBrief]:
    """Tickets of the organisation, of one of ``types``, that no engagement names yet (suggestions to staff)."""
    if not types:
        return []
    with engine.connect() as c:
        linked = select(ENG_TICKET.c.ticket_id).where(ENG_TICKET.c.ticket_id == TICKET.c.id).exists()
        rows = c.execute(select(TICKET).where(TICKET.c.organisation_id == org_id, TICKET.c.type.in_(types), ~linked)
                         .order_by(TICKET.c.created_at.desc()).limit(20))
        return [TicketBrief(id=r.id, subject=r.subject, type=r.type, status=r.status, channel=r.channel,
                            created_at=r.created_at, resolved_at=r.resolved_at) for r in rows]


def implementation_stages(c: Connection, organisation_id: int | None) -> tuple[tuple[str, str], ...]:
    """(standard, stage) of each implementation of an organisation, in the caller's transaction (for the Slack card)."""
    if organisation_id is None:
        return ()
    rows = c.execute(select(IMPL.c.standard, IMPL.c.stage).where(IMPL.c.organisation_id == organisation_id).order_by(IMPL.c.standard))
    return tuple((standard, stage) for standard, stage in rows)




def export_rows(engine: Engine) -> list[dict[str, Any]]:
    """One row per implementation (an organisation without one: one row with empty standard), for CSV."""
    rows: list[dict[str, Any]] = []
    for summary in list_organisations(engine):
        org = summary.organisation
        base = {"domain": org.domain, "name": org.name or "", "sector": org.sector or "", "country": org.country or "",
                "other_domains": ";".join(org.domains[1:])}
        if not summary.implementations:
            rows.append({**base, "standard": "", "stage": "", "stage_since": "", "urls": "", "notes": ""})
        for impl in summary.implementations:
            rows.append({**base, "standard": impl.standard, "stage": impl.stage, "stage_since": impl.stage_since.isoformat(),
                         "urls": " ".join(impl.urls), "notes": impl.notes})
    return sorted(rows, key=lambda r: (r["domain"], r["standard"]))


# -- management information -------------------------------------------------------------
def _between(column: Any, since: datetime | None, until: datetime | None) -> list[Any]:
    return [*([column >= since] if since is not None else []), *([column < until] if until is not None else [])]


def engagements_report(c: Connection, since: datetime | None, until: datetime | None, month: Any) -> dict[str, Any]:
    """Engagements requested in the period: by kind {count, hours}, by kind × sector, by month × kind; delivered."""
    where = _between(ENG.c.requested_at, since, until)
    sector = func.coalesce(ORG.c.sector, "unknown")
    joined = ENG.join(ORG, ORG.c.id == ENG.c.organisation_id)
    by_kind = {k: {"count": int(n), "hours": round(float(h or 0), 2)}
               for k, n, h in c.execute(select(ENG.c.kind, func.count(), func.sum(ENG.c.hours)).where(*where).group_by(ENG.c.kind).order_by(ENG.c.kind))}
    by_kind_sector: dict[str, dict[str, dict[str, float]]] = {}
    for k, s, n, h in c.execute(select(ENG.c.kind, sector, func.count(), func.sum(ENG.c.hours)).select_from(joined).where(*where).group_by(ENG.c.kind, sector)):
        by_kind_sector.setdefault(k, {})[s] = {"count": int(n), "hours": round(float(h or 0), 2)}
    m = month(ENG.c.requested_at)
    by_month: dict[str, dict[str, dict[str, float]]] = {}
    for mo, k, n, h in c.execute(select(m, ENG.c.kind, func.count(), func.sum(ENG.c.hours)).where(*where).group_by(m, ENG.c.kind)):
        by_month.setdefault(mo, {})[k] = {"count": int(n), "hours": round(float(h or 0), 2)}
    delivered = c.execute(select(func.count(), func.sum(ENG.c.hours)).where(*_between(ENG.c.delivered_at, since, until))).one()
    return {"count": sum(v["count"] for v in by_kind.values()), "hours": round(sum(v["hours"] for v in by_kind.values()), 2),
            "by_kind": by_kind, "by_kind_sector": by_kind_sector, "by_month": dict(sorted(by_month.items())),
            "delivered": {"count": int(delivered[0] or 0), "hours": round(float(delivered[1] or 0), 2)}}


def implementations_report(c: Connection, until: datetime | None) -> dict[str, dict[str, int]]:
    """standard → stage → organisations at that stage at the end of the period (replayed from the stage changes)."""
    last = select(STAGE.c.implementation_id, func.max(STAGE.c.id).label("last_id")).where(*_between(STAGE.c.at, None, until)) \
        .group_by(STAGE.c.implementation_id).subquery()
    rows = c.execute(select(STAGE.c.standard, STAGE.c.to_stage, func.count()).join(last, and_(last.c.last_id == STAGE.c.id))
                     .group_by(STAGE.c.standard, STAGE.c.to_stage))
    found: dict[str, dict[str, int]] = {}
    for standard, stage, n in rows:
        found.setdefault(standard, {})[stage] = int(n)
    return found


def stage_changes_report(c: Connection, since: datetime | None, until: datetime | None) -> dict[str, dict[str, int]]:
    """standard → stage reached → implementations that reached it in the period (the funnel)."""
    rows = c.execute(select(STAGE.c.standard, STAGE.c.to_stage, func.count(func.distinct(STAGE.c.implementation_id)))
                     .where(*_between(STAGE.c.at, since, until)).group_by(STAGE.c.standard, STAGE.c.to_stage))
    found: dict[str, dict[str, int]] = {}
    for standard, stage, n in rows:
        found.setdefault(standard, {})[stage] = int(n)
    return found

