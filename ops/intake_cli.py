"""`helpdesk import` and `helpdesk intake …`: read a channel (files, IMAP) and queue what arrives."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

import typer

from ops.runtime import Runtime
from ops.shared_cli import console, err, progress, settings

DOORBELL_SCRIPT = Path(__file__).resolve().parent / "dovecot" / "helpdesk-doorbell.lua"  # shipped with the package
intake_app = typer.Typer(no_args_is_help=True, help="Channel adapters: read a channel and queue what arrives.")


def register(app: typer.Typer) -> None:
    from ops.x_cli import register as register_x_intake  # noqa: PLC0415

    app.command("import")(import_)
    app.add_typer(intake_app, name="intake")
    register_x_intake(intake_app)


def import_(paths: Annotated[list[Path], typer.Argument(metavar="PATH", help=".eml files, folders of them, mbox files or Maildirs.")]) -> None:
    """Queue every message found under PATHS for processing. Exit 1 when nothing in PATHS was recognised as mail."""
    from intake.errors import SinkError  # noqa: PLC0415

    with Runtime(settings()) as runtime:
        runtime.wait_for_services(threading.Event(), database=False)  # the queue is in Redis: wait for it (Ctrl-C to give up)
        try:
            result = import_paths(runtime, paths)
        except SinkError as exc:
            err.print(f"[red]Redis went away during the import:[/red] {exc}\nrun the same import again: "
                      "what was queued already is stored once")
            raise typer.Exit(2) from exc
    skipped = unrecognised(paths, result.sources)
    for path, why in skipped[:20]:
        err.print(f"[yellow]not recognised:[/yellow] {path}: {why}")
    if len(skipped) > 20:
        err.print(f"[yellow]… and {len(skipped) - 20} more not recognised[/yellow]")
    console.print(f"queued [bold]{result.queued}[/bold] message(s); quarantined [bold]{result.rejected}[/bold] unreadable item(s) "
                  f"(the worker records them: helpdesk dlq list); not recognised [bold]{len(skipped)}[/bold] file(s)")
    if result.queued + result.rejected == 0:
        err.print("[red]nothing to import:[/red] no .eml file, mbox or Maildir with messages in " + ", ".join(map(str, paths)))
        raise typer.Exit(1)


MAIL_SUFFIXES = {".eml", ".mbox", ".mbx"}


def unrecognised(paths: list[Path], sources: set[str]) -> list[tuple[Path, str]]:
    """Files under ``paths`` that gave no message: not mail files, or mboxes/Maildirs without messages."""
    found: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir() and all((path / sub).is_dir() for sub in ("cur", "new", "tmp")):
            if not any(s.startswith(f"maildir:{path}#") for s in sources):
                found.append((path, "a Maildir without messages"))
        elif path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            if not files:
                found.append((path, "an empty folder"))
            for child in files:
                if child.suffix.lower() not in MAIL_SUFFIXES:
                    found.append((child, "not a mail file (.eml, .mbox, .mbx)"))
                elif not _gave_messages(child, sources):
                    found.append((child, "no messages found in it"))
        elif not _gave_messages(path, sources):
            found.append((path, "no messages found in it (not an mbox or e-mail file)"))
    return found


def _gave_messages(path: Path, sources: set[str]) -> bool:
    return f"file:{path}" in sources or any(s.startswith(f"mbox:{path}#") for s in sources)


def import_paths(runtime: Runtime, paths: list[Path], *, label: str = "importing"):  # noqa: ANN201 - ImportResult
    """Ingest every item under ``paths``; the result also lists the sources read (``.sources``)."""
    from intake.files import FileAdapter, discover  # noqa: PLC0415

    try:
        items = discover(paths)
    except FileNotFoundError as exc:
        err.print(f"[red]no such file or folder:[/red] {exc}")
        raise typer.Exit(1) from exc
    adapter = FileAdapter(runtime.ingestor)
    with progress() as bar:
        task = bar.add_task(label, total=len(items))
        result = adapter.ingest_all(items, progress=lambda _item: bar.advance(task))
    result.sources = {item.source for item in items}
    return result




@intake_app.command("imap-doorbell-script")
def intake_imap_doorbell_script() -> None:
    """Print the Dovecot script that rings HELPDESK_IMAP_DOORBELL when mail arrives (save it where dovecot.conf names it)."""
    import sys  # noqa: PLC0415

    sys.stdout.write(DOORBELL_SCRIPT.read_text(encoding="utf-8"))


@intake_app.command("imap")
def intake_imap() -> None:
    """Watch the IMAP folders (IDLE, or polling) and queue every message; runs until stopped."""
    from config.errors import SettingsError  # noqa: PLC0415
    from config.settings import host_and_port  # noqa: PLC0415
    from intake.doorbell import Doorbell  # noqa: PLC0415
    from intake.imap import FolderWatcher, ImapAccount, ImapAdapter, ProcessedMover, WatchOptions  # noqa: PLC0415
    from intake.state import AdapterHealth, ProcessedLog, RedisCheckpointStore  # noqa: PLC0415
    from workers.ops.runner import install_signal_handlers  # noqa: PLC0415

    s = settings(process="intake-imap")  # a half-configured mailbox stops here, naming what is missing
    imap = s.imap
    account = ImapAccount.from_group(imap)
    stop = threading.Event()
    install_signal_handlers(stop)
    with Runtime(s) as runtime:
        if not runtime.wait_for_services(stop, database=False):  # the queue and the checkpoints live in Redis
            return
        client, ns = runtime.broker.client, s.redis_namespace
        checkpoints, health = RedisCheckpointStore(client, ns), AdapterHealth(client, ns)
        options = WatchOptions.from_group(imap, max_raw_bytes=s.limits.max_raw_bytes, heartbeat_seconds=s.adapter_heartbeat_seconds)
        doorbell = None
        if imap.doorbell:
            try:
                doorbell = Doorbell(host_and_port(imap.doorbell), imap.user or "")
            except OSError as exc:
                raise SettingsError(f"HELPDESK_IMAP_DOORBELL={imap.doorbell}: cannot listen there: {exc}") from exc
        try:
            watchers = [FolderWatcher(account, folder, runtime.ingestor, checkpoints, health, options, stop,
                                      bell=doorbell.bell(folder) if doorbell is not None else None)
                        for folder in account.folders]
            mover = None
            if imap.processed_action != "none":
                mover = ProcessedMover(account, ProcessedLog(client, ns), health, imap.processed_action,
                                       imap.processed_flag, imap.processed_folder, stop)
            rings = f"; the doorbell on udp {imap.doorbell}" if doorbell is not None else ""
            console.print(f"watching {', '.join(account.folders)} of {account.name}{rings} (Ctrl-C to stop)")
            ImapAdapter(watchers, mover, doorbell).run(stop)
        finally:
            if doorbell is not None:
                doorbell.close()

