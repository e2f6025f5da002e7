"""What every worker process reads and never writes, loaded once in the parent of ``helpdesk worker --processes N``.

The pool forks its children after ``preload``: they start with the worker's
code imported (about a second of a worker's start) and the read-only data a
first message would load — lingua's trigrams and fastText's identifier, the
Public Suffix List, the SQLModel ticket class, the public holidays of the
teams' calendars — in pages they share with the parent until one writes them.
Each child still builds its own broker, database engine and services (fresh
connections, a broker id of its own, the newest model on disk).

Nothing here may leave a thread, a socket or a database connection behind: a
forked child gets a copy of the memory, not of the threads, and must not share
a connection with its parent.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from config.settings import Settings

if TYPE_CHECKING:
    from config.desk import DeskConfig

# Text long and short enough to take both of the language detector's paths (fastText with lingua, fastText alone).
SAMPLE_SUBJECT = "Question about publishing our grants data"
SAMPLE_TEXT = ("Hello, we are a small foundation and would like to publish our grants data to the standard. "
               "Could you tell us where to start, and whether there is a validator we can use?")
SHORT_TEXT = "Hola, gracias"


def preload(settings: Settings) -> None:
    """Import the worker's code and load what its first messages would; raises if that left a thread running."""
    running = set(threading.enumerate())
    import workers.actors  # noqa: F401, PLC0415 - the worker's code
    from classifiers.pipeline import EnquiryClassifier  # noqa: PLC0415
    from config.desk import load_desk  # noqa: PLC0415
    from storage.tickets import _ticket_class  # noqa: PLC0415
    from workers.intake.training import ModelStore  # noqa: PLC0415

    desk = load_desk(settings)
    classifier = EnquiryClassifier(desk, settings.triage_confidence, ModelStore(settings.resolved_model_dir).newest())
    for text in (SAMPLE_TEXT, SHORT_TEXT):
        classifier.classify(subject=SAMPLE_SUBJECT, text=text, sender="someone@example.org")
    keep_public_holidays(settings, desk)
    _ticket_class()
    if names := sorted(t.name for t in set(threading.enumerate()) - running):
        raise RuntimeError(f"preloading left threads running, a forked worker would miss them: {', '.join(names)}")


def keep_public_holidays(settings: Settings, desk: DeskConfig) -> None:
    """The public holidays of every team's calendar, this year and next (a due time may fall after New Year): read from
    the desk's file, or worked out and kept there for the processes after this one."""
    from workers.desk import public_holidays  # noqa: PLC0415
    from workers.desk.operations import Desk  # noqa: PLC0415

    public_holidays.keep_in(settings.public_holidays_file)
    operations = Desk(desk, settings.ticket_prefix)
    year = datetime.now(UTC).year
    for team in operations.config.teams.teams:
        for each in (year, year + 1):
            operations.calendar(team).public_holidays(each)
