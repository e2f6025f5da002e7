"""The desk's own configuration files — taxonomy, organisations, teams, routing.

Each file is validated on load and cross-checked against the others (a routing
rule naming an unknown team or type is an error at start-up, not a surprise
at the first ticket). The result is one frozen ``DeskConfig`` passed to the
classifiers and the router.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from config.errors import ConfigFileError
from config.settings import Settings
from config.templates import Templates


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EnquiryType(_Frozen):
    description: str
    cues: dict[str, tuple[str, ...]] = Field(default_factory=dict)


class Sector(_Frozen):
    description: str


class DomainPattern(_Frozen):
    pattern: str
    sector: str
    confidence: float = Field(ge=0.0, le=1.0)


class Taxonomy(_Frozen):
    version: int
    default_type: str
    types: dict[str, EnquiryType]
    sectors: dict[str, Sector]
    domain_patterns: tuple[DomainPattern, ...] = ()
    free_mail_domains: frozenset[str] = frozenset()

    @field_validator("free_mail_domains")
    @classmethod
    def _lower(cls, value: frozenset[str]) -> frozenset[str]:
        return frozenset(domain.lower() for domain in value)


class Organisation(_Frozen):
    domain: str
    name: str
    sector: str


class OrganisationRegistry(_Frozen):
    version: int
    organisations: tuple[Organisation, ...] = ()


Role = Literal["member", "lead", "manager", "operator", "admin"]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-4]):[0-5]\d$"


class Member(_Frozen):
    key: str
    name: str
    email: str | None = None
    slack_user: str | None = None
    timezone: str = "UTC"
    working_hours: str = Field("09:00-17:30", pattern=_HOURS)
    working_days: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri")
    capacity: int = Field(15, ge=0, description="open tickets this person can hold")
    on_leave_until: date | None = None
    lead: bool = False
    roles: tuple[Role, ...] = Field(("member",), description="what this person may do (a lead is also a 'lead')")

    @property
    def all_roles(self) -> frozenset[str]:
        return frozenset((*self.roles, *(("lead",) if self.lead else ())))


class StaffPerson(_Frozen):
    """Someone who acts on the desk without answering tickets in a team: a manager, an operator, an admin."""

    key: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    name: str
    email: str | None = None
    slack_user: str | None = None
    roles: tuple[Role, ...] = ("manager",)

    @property
    def all_roles(self) -> frozenset[str]:
        return frozenset(self.roles)


class Calendar(_Frozen):
    """The team's business hours, for SLA clocks."""

    timezone: str = "UTC"
    working_hours: str = Field("09:00-17:30", pattern=_HOURS)
    working_days: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri")
    holidays: tuple[date, ...] = ()
    holiday_country: str | None = Field(None, description="ISO country code: public holidays from the `holidays` package")


class Team(_Frozen):
    name: str
    slack_channel: str | None = None
    members: tuple[Member, ...] = ()
    strategy: Literal["round_robin", "least_loaded"] = "least_loaded"
    calendar: Calendar = Calendar()
    escalation_channel: str | None = None
    digest_at: str | None = Field("09:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="local time of the daily digest")
    reassign_when_away: bool = True


class Teams(_Frozen):
    version: int
    teams: dict[str, Team]
    staff: tuple[StaffPerson, ...] = Field((), description="people with roles outside the teams: managers, operators, admins")


class SlaPolicy(_Frozen):
    name: str
    when: dict[str, tuple[str, ...]] = Field(default_factory=dict, description="priority and/or type lists")
    first_response: str = Field(pattern=r"^\d+(\.\d+)?[hdm]$", description="business time: 30m, 4h, 2d")
    resolution: str = Field(pattern=r"^\d+(\.\d+)?[hdm]$")


class SlaPolicies(_Frozen):
    version: int
    warn_at: float = Field(0.75, gt=0, lt=1, description="share of the target at which staff are warned")
    policies: tuple[SlaPolicy, ...] = ()


class RuleConditions(_Frozen):
    type: tuple[str, ...] | None = None
    sector: tuple[str, ...] | None = None
    language: tuple[str, ...] | None = None
    channel: tuple[str, ...] | None = None
    domain: tuple[str, ...] | None = None
    organisation: tuple[str, ...] | None = None
    country: tuple[str, ...] | None = None
    region: tuple[str, ...] | None = None
    keywords: tuple[str, ...] | None = None
    needs_triage: bool | None = None
    min_confidence: float | None = Field(None, ge=0, le=1)
    max_confidence: float | None = Field(None, ge=0, le=1)


class RoutingRule(_Frozen):
    name: str
    when: RuleConditions = RuleConditions()
    team: str
    priority: str = "normal"
    tags: tuple[str, ...] = ()


class RoutingDefault(_Frozen):
    team: str
    priority: str = "normal"


class Routing(_Frozen):
    version: int
    default: RoutingDefault
    regions: dict[str, tuple[str, ...]] = Field(default_factory=dict, description="region → ISO country codes")
    rules: tuple[RoutingRule, ...] = ()


class Standard(_Frozen):
    name: str


class Implementations(_Frozen):
    """The standards the desk supports, the stage ladder, engagement kinds, and which enquiry types suggest which kind."""

    version: int
    standards: dict[str, Standard] = Field(default_factory=lambda: {"ocds": Standard(name="Open Contracting Data Standard")})
    stages: tuple[str, ...] = ("prospect", "scoping", "mapping", "publishing", "publishing_regularly", "using")
    engagement_kinds: tuple[str, ...] = (
        "scoping_note", "mapping_review", "implementation_guidance", "data_review", "training", "tool_assessment",
        "policy_analysis", "other",
    )
    suggest: dict[str, str] = Field(default_factory=dict, description="enquiry type → engagement kind it usually leads to")


PRIORITIES = ("low", "normal", "high", "urgent")
CHANNELS = ("email", "slack", "x", "web")


class DeskConfig(_Frozen):
    taxonomy: Taxonomy
    organisations: OrganisationRegistry
    teams: Teams
    routing: Routing
    sla: SlaPolicies = SlaPolicies(version=1)
    templates: Templates = Templates(version=1)
    implementations: Implementations = Implementations(version=1)
    languages: tuple[str, ...]


def load_desk(settings: Settings) -> DeskConfig:
    """Load and cross-check the four desk files named in ``settings``.

    Raises ConfigFileError listing every problem found.
    """
    desk = DeskConfig(
        taxonomy=_load(settings.taxonomy_file, Taxonomy),
        organisations=_load(settings.organisations_file, OrganisationRegistry),
        teams=_load(settings.teams_file, Teams),
        routing=_load(settings.routing_file, Routing),
        sla=_load(settings.sla_file, SlaPolicies),
        templates=_load(settings.templates_file, Templates),
        implementations=_load(settings.implementations_file, Implementations),
        languages=settings.languages,
    )
    problems = _cross_check(desk)
    if problems:
        raise ConfigFileError("desk configuration is inconsistent:\n  - " + "\n  - ".join(problems))
    return desk


# libyaml's safe loader when PyYAML was built with it: the same documents, ten times faster (every command loads the desk).
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load(path: Path, model: type[_Frozen]) -> Any:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigFileError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigFileError(f"{path}: {details}") from exc


def _cross_check(desk: DeskConfig) -> list[str]:
    tax, routing = desk.taxonomy, desk.routing
    problems: list[str] = []
    if tax.default_type not in tax.types:
        problems.append(f"taxonomy: default_type {tax.default_type!r} is not a type")
    if "unknown" not in tax.sectors:
        problems.append("taxonomy: the sector 'unknown' is required")
    for pattern in tax.domain_patterns:
        if pattern.sector not in tax.sectors:
            problems.append(f"taxonomy: domain pattern {pattern.pattern!r} names unknown sector {pattern.sector!r}")
    for name, etype in tax.types.items():
        for lang in etype.cues:
            if lang not in desk.languages:
                problems.append(f"taxonomy: type {name!r} has cues for {lang!r}, not a configured language")
    for org in desk.organisations.organisations:
        if org.sector not in tax.sectors:
            problems.append(f"organisations: {org.domain} names unknown sector {org.sector!r}")
    teams = desk.teams.teams
    if routing.default.team not in teams:
        problems.append(f"routing: default team {routing.default.team!r} is not in the teams file")
    if routing.default.priority not in PRIORITIES:
        problems.append(f"routing: default priority must be one of {PRIORITIES}")
    seen: set[str] = set()
    for rule in routing.rules:
        problems.extend(_check_rule(rule, desk, seen))
    problems.extend(_check_teams(desk))
    problems.extend(_check_sla(desk))
    problems.extend(desk.templates.problems(desk.languages, CHANNELS))
    problems.extend(_check_implementations(desk))
    return problems


def _check_implementations(desk: DeskConfig) -> list[str]:
    impl = desk.implementations
    problems = []
    for name, values in (("stage", impl.stages), ("engagement kind", impl.engagement_kinds), ("standard", tuple(impl.standards))):
        if not values:
            problems.append(f"implementations: at least one {name} is required")
        if len(set(values)) != len(values):
            problems.append(f"implementations: a {name} is listed twice")
        problems.extend(f"implementations: {name} {v!r} must be a lower-case identifier" for v in values
                        if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", v))
    for etype, kind in impl.suggest.items():
        if etype not in desk.taxonomy.types:
            problems.append(f"implementations: suggest names unknown enquiry type {etype!r}")
        if kind not in impl.engagement_kinds:
            problems.append(f"implementations: suggest names unknown engagement kind {kind!r}")
    return problems


def _check_teams(desk: DeskConfig) -> list[str]:
    problems = []
    for key, team in desk.teams.teams.items():
        zones = [("calendar", team.calendar.timezone)] + [(f"member {m.key}", m.timezone) for m in team.members]
        for where, zone in zones:
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                problems.append(f"team {key!r}: {where} has unknown time zone {zone!r}")
        days = [*team.calendar.working_days, *(d for m in team.members for d in m.working_days)]
        for day in days:
            if day not in WEEKDAYS:
                problems.append(f"team {key!r}: unknown working day {day!r} (use {', '.join(WEEKDAYS)})")
        keys = [m.key for m in team.members]
        if len(set(keys)) != len(keys):
            problems.append(f"team {key!r}: a member key is used twice")
    people: dict[str, tuple[str | None, str | None]] = {}
    for person in [m for t in desk.teams.teams.values() for m in t.members] + list(desk.teams.staff):
        known = people.setdefault(person.key, (person.email, person.slack_user))
        if known != (person.email, person.slack_user):
            problems.append(f"teams: {person.key!r} appears twice with a different e-mail or Slack user")
    slack_users: dict[str, str] = {}
    for person in [m for t in desk.teams.teams.values() for m in t.members] + list(desk.teams.staff):
        if person.slack_user and slack_users.setdefault(person.slack_user, person.key) != person.key:
            problems.append(f"teams: Slack user {person.slack_user} belongs to two people")
    return problems


def _check_sla(desk: DeskConfig) -> list[str]:
    problems = []
    for policy in desk.sla.policies:
        for field, values in policy.when.items():
            allowed = {"priority": PRIORITIES, "type": tuple(desk.taxonomy.types)}.get(field)
            if allowed is None:
                problems.append(f"SLA policy {policy.name!r}: unknown condition {field!r} (priority, type)")
                continue
            problems.extend(f"SLA policy {policy.name!r}: unknown {field} {v!r}" for v in values if v not in allowed)
    return problems


def _check_rule(rule: RoutingRule, desk: DeskConfig, seen: set[str]) -> list[str]:
    where = f"routing rule {rule.name!r}"
    problems = []
    if rule.name in seen:
        problems.append(f"{where}: the name is used twice")
    seen.add(rule.name)
    if rule.team not in desk.teams.teams:
        problems.append(f"{where}: unknown team {rule.team!r} (teams: {', '.join(desk.teams.teams)})")
    if rule.priority not in PRIORITIES:
        problems.append(f"{where}: priority {rule.priority!r} is not one of {PRIORITIES}")
    allowed = {
        "type": desk.taxonomy.types,
        "sector": desk.taxonomy.sectors,
        "language": desk.languages,
        "channel": CHANNELS,
    }
    for field, values in allowed.items():
        for value in getattr(rule.when, field) or ():
            if value not in values:
                problems.append(f"{where}: unknown {field} {value!r}")
    for region in rule.when.region or ():
        if region not in desk.routing.regions:
            problems.append(f"{where}: unknown region {region!r} (define it under regions:)")
    return problems
