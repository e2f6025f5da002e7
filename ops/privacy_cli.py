"""`helpdesk privacy export|erase`: an enquirer's data, given back or taken away (admins only; every use audited).

``register(app)`` adds the group; nothing is registered at import time.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from ops.logs import command_settings as _settings
from ops.runtime import Runtime

console = Console()
err = Console(stderr=True)
By = Annotated[str | None, typer.Option("--by", help="Who does it: an admin's key in the teams file (default: HELPDESK_STAFF).")]


def register(app: typer.Typer) -> None:
    privacy_app = typer.Typer(no_args_is_help=True, help="People's data: export everything held about an enquirer, or erase it.")
    app.add_typer(privacy_app, name="privacy")

    @privacy_app.command("export")
    def export(
        address: Annotated[str, typer.Argument(metavar="ADDRESS", help="The person's e-mail address, Slack user id or X handle.")],
        as_json: Annotated[bool, typer.Option("--json", help="Print the export as JSON (the only format).")] = True,
        out: Annotated[Path | None, typer.Option("--out", help="Write to this file (mode 0600) instead of standard output.")] = None,
        files: Annotated[bool, typer.Option("--files/--no-files", help="Include raw mail and attachments (base64).")] = True,
        by: By = None,
    ) -> None:
        """Every personal datum held about a person: identities, tickets, messages, raw mail, attachments, corrections."""
        settings = _settings(log_level="WARNING")
        with Runtime(settings) as runtime:
            data = _run(lambda: _privacy(runtime).export(address, by=by or settings.staff, with_files=files))
        text = json.dumps(data, default=_json_default, ensure_ascii=False, indent=2)
        if out is None:
            print(text)
            return
        out.touch(mode=0o600, exist_ok=True)
        out.chmod(0o600)
        out.write_text(text, encoding="utf-8")
        err.print(f"wrote {len(data['messages'])} message(s), {len(data['tickets'])} ticket(s) to {out}")

    @privacy_app.command("erase")
    def erase(
        address: Annotated[str, typer.Argument(metavar="ADDRESS", help="The person's e-mail address, Slack user id or X handle.")],
        yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
        by: By = None,
    ) -> None:
        """Remove or pseudonymise everything of a person; tickets keep their figures, so reports do not change."""
        settings = _settings(log_level="WARNING")
        if not yes and not typer.confirm(f"Erase everything held about {address}? This cannot be undone"):
            raise typer.Exit(1)
        with Runtime(settings) as runtime:
            report = _run(lambda: _privacy(runtime).erase(address, by=by or settings.staff))
        counts = ", ".join(f"{n} {what}" for what, n in report.counts.items())
        console.print(Text(f"erased; now known as {report.pseudonym}: {counts}"))


def _privacy(runtime: Runtime) -> Any:
    from config.desk import load_desk  # noqa: PLC0415
    from config.secrets import desk_secret  # noqa: PLC0415
    from workers.desk.privacy import Privacy  # noqa: PLC0415

    settings = runtime.settings
    return Privacy(runtime.engine, load_desk(settings), runtime.archive, desk_secret(settings), prefix=settings.ticket_prefix)


def _run(action: Any) -> Any:
    from workers.errors import PrivacyRefused# noqa: PLC0415

    try:
        return action()
    except PrivacyRefused as exc:
        err.print(Text(f"refused: {exc}", style="red"))
        raise typer.Exit(1) from exc


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
