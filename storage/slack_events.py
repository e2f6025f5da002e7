"""Slack deliveries seen: each event (and card action) is handled once, whatever Slack retries."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, delete

from storage.models import SLACK_EVENT
from storage.upsert import insert_once


def first_time(engine: Engine, key: str, kind: str, at: datetime) -> bool:
    """Note the delivery ``key``; False if it was noted before (a retry: nothing to do)."""
    with engine.begin() as c:
        return insert_once(c, SLACK_EVENT, {"key": key[:255], "kind": kind[:40], "received_at": at}, ["key"], SLACK_EVENT.c.key) is not None


def forget(engine: Engine, key: str) -> None:
    """Unnote ``key``: handling it failed, so a retry (or a replay) must find it new."""
    with engine.begin() as c:
        c.execute(delete(SLACK_EVENT).where(SLACK_EVENT.c.key == key[:255]))
