"""SLA policies: which targets apply to a ticket, when they fall due, how far along the clock is. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from config.desk import SlaPolicies, SlaPolicy
from workers.desk.business_hours import BusinessCalendar


@dataclass(frozen=True)
class Due:
    policy: str
    first_response: datetime
    resolution: datetime


def policy_for(policies: SlaPolicies, priority: str, enquiry_type: str) -> SlaPolicy | None:
    """The first policy whose every condition (priority, type) holds."""
    facts = {"priority": priority, "type": enquiry_type}
    for policy in policies.policies:
        if all(facts.get(field) in values for field, values in policy.when.items()):
            return policy
    return None


def due_times(policy: SlaPolicy, opened_at: datetime, calendar: BusinessCalendar) -> Due:
    return Due(
        policy=policy.name,
        first_response=calendar.add(opened_at, calendar.duration(policy.first_response)),
        resolution=calendar.add(opened_at, calendar.duration(policy.resolution)),
    )


def progress(opened_at: datetime, due_at: datetime, now: datetime, calendar: BusinessCalendar) -> float:
    """Share of the business time between opening and due that has passed (≥ 1 at or after breach)."""
    if now >= due_at:
        return 1.0
    target = calendar.elapsed(opened_at, due_at)
    if target <= timedelta(0):
        return 1.0
    return calendar.elapsed(opened_at, now) / target


def resume(due_at: datetime | None, paused_at: datetime, now: datetime, calendar: BusinessCalendar) -> datetime | None:
    """A due time moved on by the business time the clock stood still (waiting on the enquirer)."""
    if due_at is None:
        return None
    return calendar.add(due_at, calendar.elapsed(paused_at, now))
