"""`helpdesk staff set-password KEY --password-stdin` and `helpdesk tokens create|list|revoke`: web credentials.

``staff_app`` and ``tokens_app`` are registered by ``ops.cli`` (``app.add_typer(staff_app, name="staff")``,
``app.add_typer(tokens_app, name="tokens")``). Passwords are read from standard input only (never an
argument: it would show in the process list and shell history) and stored as argon2 hashes; an API
token is printed once and stored as its SHA-256.
"""

from __future__ import annotations

import secrets
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ops.logs import command_settings as _settings
from ops.runtime import Runtime

err = Console(stderr=True)
staff_app = typer.Typer(no_args_is_help=True, help="Staff sign-in to the web dashboard.")
tokens_app = typer.Typer(no_args_is_help=True, help="Bearer tokens of the staff JSON API (/api/v1/tickets).")


@staff_app.callback()
def _staff() -> None:
    """Staff sign-in to the web dashboard."""


@tokens_app.callback()
def _tokens() -> None:
    """Bearer tokens of the staff JSON API."""


Key = Annotated[str, typer.Argument(metavar="KEY", help="The person's key in the teams file (a member or staff).")]


def _known(settings, key: str) -> None:  # noqa: ANN001 - Settings
    from config.desk import load_desk  # noqa: PLC0415
    from workers.desk.permissions import Staff  # noqa: PLC0415

    if Staff(load_desk(settings)).get(key) is None:
        err.print(f"{key} is not on the desk (a member or staff of the teams file)")
        raise typer.Exit(2)


@staff_app.command("set-password")
def set_password(
    key: Key,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from standard input (required).")] = False,
) -> None:
    """Set (or replace) a person's web password: argon2, at least 12 characters."""
    from storage.credentials import set_password_hash  # noqa: PLC0415
    from web.passwords import hash_password# noqa: PLC0415
    from web.errors import WeakPassword

    if not password_stdin:
        err.print("give the password on standard input with --password-stdin")
        raise typer.Exit(2)
    password = sys.stdin.readline().rstrip("\r\n")
    settings = _settings(log_level="WARNING")
    _known(settings, key)
    try:
        hashed = hash_password(password)
    except WeakPassword as exc:
        err.print(str(exc))
        raise typer.Exit(2) from None
    with Runtime(settings) as runtime:
        set_password_hash(runtime.engine, key, hashed)
    err.print(f"password set for {key}")


@tokens_app.command("create")
def create_token(key: Key, name: Annotated[str, typer.Option("--name", help="What the token is for.")] = "") -> None:
    """Make a token for KEY; it is printed once (keep it: only its hash is stored)."""
    from storage.credentials import add_token  # noqa: PLC0415

    settings = _settings(log_level="WARNING")
    _known(settings, key)
    token = "hdt_" + secrets.token_urlsafe(32)
    with Runtime(settings) as runtime:
        token_id = add_token(runtime.engine, key, token, name)
    err.print(f"token {token_id} for {key}")
    print(token)


@tokens_app.command("list")
def list_tokens(key: Annotated[str | None, typer.Argument(metavar="KEY", help="Only this person's tokens.")] = None) -> None:
    from storage.credentials import tokens  # noqa: PLC0415

    with Runtime(_settings(log_level="WARNING")) as runtime:
        rows = tokens(runtime.engine, key)
    table = Table("id", "staff", "name", "created", "last used", "revoked")
    for t in rows:
        table.add_row(str(t.id), t.staff_key, t.name, f"{t.created_at:%Y-%m-%d %H:%M}",
                      f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "—", "yes" if t.revoked else "")
    Console().print(table)


@tokens_app.command("revoke")
def revoke(token_id: Annotated[int, typer.Argument(metavar="ID", help="The token's id (see `tokens list`).")]) -> None:
    from storage.credentials import revoke_token  # noqa: PLC0415

    with Runtime(_settings(log_level="WARNING")) as runtime:
        if not revoke_token(runtime.engine, token_id):
            err.print(f"no live token {token_id}")
            raise typer.Exit(1)
    err.print(f"token {token_id} revoked")
