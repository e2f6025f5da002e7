"""A small desk for the worker tests: two teams, a routing default and one SLA policy, and tickets opened through
the real pipeline. ``desk_settings`` (the fixture, in conftest) points the settings at these files and the local Slack."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Engine, select

from config.settings import Settings
from storage.intake_store import TICKET
from tests.factories import make_message
from workers.services import build_services

ALL_WEEK = "[mon, tue, wed, thu, fri, sat, sun]"
MONDAY_10 = datetime(2026, 11, 2, 10, 0, tzinfo=timezone.utc)

TEAMS = f"""
version: 1
teams:
  data:
    name: Data
    slack_channel: "#data"
    escalation_channel: "#escalations"
    strategy: round_robin
    calendar: {{timezone: UTC, working_hours: "09:00-17:00"}}
    digest_at: "09:00"
    members:
      - {{key: priya, name: Priya, slack_user: U1, capacity: 1, working_hours: "00:00-24:00", working_days: {ALL_WEEK}, lead: true}}
      - {{key: jonas, name: Jonas, slack_user: U2, capacity: 1, working_hours: "00:00-24:00", working_days: {ALL_WEEK}}}
  general:
    name: General
    slack_channel: "#general"
    calendar: {{timezone: UTC}}
    members:
      - {{key: ana, name: Ana, capacity: 5, working_hours: "00:00-24:00", working_days: {ALL_WEEK}}}
"""
ROUTING = "version: 1\ndefault: {team: data, priority: normal}\nrules: []\n"
SLA = "version: 1\nwarn_at: 0.75\npolicies:\n  - {name: standard, when: {}, first_response: 4h, resolution: 2d}\n"


def open_ticket(desk_settings: Settings, broker, engine: Engine, external_id: str, at: datetime = MONDAY_10) -> int:  # noqa: ANN001
    pipeline = build_services(desk_settings, broker, engine).pipeline
    outcome = pipeline.process(make_message(external_id, sender=f"{external_id}@finance.gov.uk", received_at=at), f"d-{external_id}")
    return outcome.ticket_id


def read_ticket(engine: Engine, ticket_id: int):  # noqa: ANN202
    with engine.connect() as c:
        return c.execute(select(TICKET).where(TICKET.c.id == ticket_id)).one()
