"""The `helpdesk` command line: the app, and the command groups it gathers from their modules.

| module | commands |
|---|---|
| ``ops.intake_cli`` | ``import``, ``intake imap``, ``intake x`` |
| ``ops.processes_cli`` | ``worker``, ``scheduler``, ``web``, ``slack socket``, ``status``, ``db upgrade``, ``reprocess``, ``demo`` |
| ``ops.tickets_cli`` | ``tickets``, ``show``, ``claim``, ``assign``, ``pending``, ``resolve``, ``reopen``, ``note``, ``reply``, ``reclassify`` |
| ``ops.contacts_cli`` | ``contacts show``, ``contacts link`` |
| ``ops.report_cli`` | ``report`` |
| ``ops.dlq_cli`` | ``dlq list|show|replay|purge`` |

and ``classify``, ``docs``, ``x``, ``org``/``engagement``, ``privacy``, ``staff``/``tokens`` from their own
modules. Modules import what a command needs inside the command (never sqlalchemy, numpy, dramatiq or the
workers at import time), so ``helpdesk --help`` stays fast; and a command imports only its own module
(``COMMANDS``), so `helpdesk tickets` pays for the ticket commands alone. ``bench/startup.py`` measures both.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Annotated

import typer

from config.errors import ConfigError
from ops.shared_cli import err
from ops.signals import exit_cleanly_on_sigterm

# Plain help, as Unix commands write it (flags without a type, no panels): typer's rich help would print
# ``--json <bool>`` and import its rich renderer, a tenth of a second, on every --help.
app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode=None,
                  help="Helpdesk intake: enquiries in, classified and routed tickets out.")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

        try:
            print(f"helpdesk {version('helpdesk-intake')}")
        except PackageNotFoundError:
            print("helpdesk (not installed as a package)")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """Helpdesk intake: enquiries in, classified and routed tickets out."""


def _register_subcommands(argv: Sequence[str] | None = None) -> None:
    """Add the commands to ``app``: every module's, or — given the command line — only the module of the command it
    names, so that `helpdesk tickets` neither imports nor converts the other fifty commands. Without a command
    (``--help``, ``--version``), or with a name no module claims, every module's: typer lists them, or says there is
    no such command."""
    name = next((arg for arg in argv or () if not arg.startswith("-")), None)
    for module in [COMMANDS[name]] if name in COMMANDS else REGISTRARS:
        REGISTRARS[module](app)


def _register(module: str, function: str = "register") -> Callable[[typer.Typer], None]:
    return lambda target: getattr(importlib.import_module(module), function)(target)


def _register_classify(target: typer.Typer) -> None:
    from ops.classify_cli import app as classify_app  # noqa: PLC0415

    target.add_typer(classify_app, name="classify")


def _register_web_credentials(target: typer.Typer) -> None:
    """``staff`` and ``tokens``: passwords and API tokens of the web dashboard."""
    from ops.web_cli import staff_app, tokens_app  # noqa: PLC0415

    target.add_typer(staff_app, name="staff")
    target.add_typer(tokens_app, name="tokens")


# Each module that adds commands, in the order `helpdesk --help` lists them, and the top-level command or group
# names it adds (tests/ops/test_cli_registry.py holds this table to what the modules register).
REGISTRARS: dict[str, Callable[[typer.Typer], None]] = {
    "ops.intake_cli": _register("ops.intake_cli"),
    "ops.processes_cli": _register("ops.processes_cli"),
    "ops.tickets_cli": _register("ops.tickets_cli"),
    "ops.contacts_cli": _register("ops.contacts_cli"),
    "ops.report_cli": _register("ops.report_cli"),
    "ops.dlq_cli": _register("ops.dlq_cli"),
    "ops.classify_cli": _register_classify,
    "ops.docs_cli": _register("ops.docs_cli"),
    "ops.x_cli": _register("ops.x_cli", "register_x"),
    "ops.knowledge_cli": _register("ops.knowledge_cli"),
    "ops.privacy_cli": _register("ops.privacy_cli"),
    "ops.web_cli": _register_web_credentials,
}
COMMANDS: dict[str, str] = {
    **dict.fromkeys(("import", "intake"), "ops.intake_cli"),
    **dict.fromkeys(("worker", "status", "web", "scheduler", "reprocess", "demo", "db", "slack"), "ops.processes_cli"),
    **dict.fromkeys(("tickets", "show", "claim", "pending", "resolve", "reopen", "assign", "note", "reclassify", "reply"),
                    "ops.tickets_cli"),
    "contacts": "ops.contacts_cli",
    "report": "ops.report_cli",
    "dlq": "ops.dlq_cli",
    "classify": "ops.classify_cli",
    "docs": "ops.docs_cli",
    "x": "ops.x_cli",
    **dict.fromkeys(("org", "engagement"), "ops.knowledge_cli"),
    "privacy": "ops.privacy_cli",
    **dict.fromkeys(("staff", "tokens"), "ops.web_cli"),
}


COLLECTOR_PAUSE_SECONDS = 3.0


def _pause_collector_while_starting() -> None:
    """Pause Python's cyclic garbage collector for the first seconds of the process.

    While a command imports (SQLAlchemy, pydantic, numpy …) and builds what it needs, hardly anything it makes is
    garbage, yet the collector walks it all again and again: 0.1 s of `helpdesk tickets`, most of it two full
    collections. A short command has ended before the pause does. A long-running one (worker, web, scheduler, an
    adapter, a large import) then freezes what it has made — those objects live to the end, and no later collection
    walks them again — and collects on the usual schedule from there. It does not collect first: in a worker draining
    mail, that full collection took 0.15 s of the GIL, mid-drain, to find about 800 objects of cyclic garbage, which
    now stay. A child forked meanwhile does the same at once (the timer thread does not follow it)."""
    gc.disable()
    timer = threading.Timer(COLLECTOR_PAUSE_SECONDS, _resume_collector)
    timer.daemon = True
    timer.start()
    os.register_at_fork(after_in_child=_resume_collector)


def _resume_collector() -> None:
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


# pydantic looks through every installed distribution's entry points for plugins at its first model (8–13 ms of
# each process's start); the desk uses none. A desk that does sets the variable itself (empty: every plugin).
PYDANTIC_PLUGINS = ("PYDANTIC_DISABLE_PLUGINS", "__all__")


def main() -> None:
    os.environ.setdefault(*PYDANTIC_PLUGINS)  # before any model is built; the processes it starts inherit it
    _pause_collector_while_starting()
    exit_cleanly_on_sigterm()
    import atexit  # noqa: PLC0415

    # Registered first, so run last: the interpreter's final collection then skips every object that still
    # exists (a tenth of a second of a short command's wall time, with sqlalchemy and pydantic loaded).
    atexit.register(gc.freeze)
    _register_subcommands(sys.argv[1:])
    try:
        app()
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        sys.exit(2)
