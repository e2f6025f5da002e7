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
workers at import time), so ``helpdesk --help`` stays fast; ``bench/startup.py`` measures it.
"""

from __future__ import annotations

import sys
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


def _register_subcommands() -> None:
    from ops import contacts_cli, dlq_cli, intake_cli, processes_cli, report_cli, tickets_cli  # noqa: PLC0415
    from ops.classify_cli import app as classify_app  # noqa: PLC0415
    from ops.docs_cli import register as register_docs  # noqa: PLC0415
    from ops.knowledge_cli import register as register_knowledge  # noqa: PLC0415
    from ops.privacy_cli import register as register_privacy  # noqa: PLC0415
    from ops.x_cli import register_x  # noqa: PLC0415

    for module in (intake_cli, processes_cli, tickets_cli, contacts_cli, report_cli, dlq_cli):
        module.register(app)
    app.add_typer(classify_app, name="classify")
    register_docs(app)
    register_x(app)
    register_knowledge(app)
    register_privacy(app)
    _register_web_credentials()


def _register_web_credentials() -> None:
    """``staff`` and ``tokens``: passwords and API tokens of the web dashboard."""
    from ops.web_cli import staff_app, tokens_app  # noqa: PLC0415

    app.add_typer(staff_app, name="staff")
    app.add_typer(tokens_app, name="tokens")


_register_subcommands()


def main() -> None:
    exit_cleanly_on_sigterm()
    import atexit  # noqa: PLC0415
    import gc  # noqa: PLC0415

    # Registered first, so run last: the interpreter's final collection then skips every object that still
    # exists (a tenth of a second of a short command's wall time, with sqlalchemy and pydantic loaded).
    atexit.register(gc.freeze)
    try:
        app()
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        sys.exit(2)
