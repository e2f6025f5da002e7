"""An enquirer's data is theirs: exported whole, erased whole — and the desk's figures do not move. Real processes."""

from __future__ import annotations

import base64
import json
import subprocess
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, update

from config.settings import Settings
from storage import audit
from storage.db import create_db_engine
from storage.intake_store import CONTACT, IDENTITY, MESSAGE, TICKET
from tests.cli import HELPDESK, run_cli, settings_env
from tests.factories import make_email

pytestmark = pytest.mark.slow

UNTIL = "2030-01-01"


def _with_attachment() -> bytes:
    mail = EmailMessage()
    mail["From"] = "Ana Gómez <ana@hacienda.gob.mx>"
    mail["To"] = "helpdesk@osds.example"
    mail["Subject"] = "Our mapping spreadsheet, Ana Gómez, tel. 555 0100"
    mail["Message-ID"] = "<p2@hacienda.gob.mx>"
    mail["Date"] = "Mon, 02 Nov 2026 10:00:00 +0000"
    mail.set_content("Dear desk, our mapping is attached. Call me on 555 0100.\n\nAna Gómez\nSecretaría de Hacienda")
    mail.add_attachment(b"field,path\ntender value,tender/value/amount\n", maintype="text", subtype="csv", filename="mapping-ana.csv")
    return mail.as_bytes()


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.rglob("*.gz")}


def test_export_then_erase_keeps_every_figure(settings: Settings, tmp_path: Path) -> None:
    env = settings_env(settings, staff="admin")
    inbox = tmp_path / "mail"
    inbox.mkdir()
    (inbox / "1.eml").write_bytes(make_email(sender="Ana Gómez <ana@hacienda.gob.mx>", message_id="<p1@hacienda.gob.mx>",
                                             subject="Validation errors, Ana", body="Hello, I am Ana Gómez. The validator fails."))
    (inbox / "2.eml").write_bytes(_with_attachment())
    (inbox / "3.eml").write_bytes(make_email(sender="Li Wei <li@mof.gov.example>", message_id="<q1@mof.gov.example>",
                                             subject="API access", body="How do we get access to the registry API?"))
    run_cli(["import", str(inbox)], env)
    run_cli(["worker", "--until-idle"], env, timeout=180)
    raw = Path(settings.data_dir) / "raw"
    before_files = _files(raw)
    before = run_cli(["report", "--json", "--until", UNTIL], env).stdout

    # An admin exports everything held about Ana: messages, her raw mail and her attachment
    exported = json.loads(run_cli(["privacy", "export", "ana@hacienda.gob.mx", "--json"], env).stdout)
    assert {m["subject"] for m in exported["messages"]} >= {"Validation errors, Ana", "Our mapping spreadsheet, Ana Gómez, tel. 555 0100"}
    assert exported["contacts"][0]["identities"][0]["address"] == "ana@hacienda.gob.mx"
    contents = [base64.b64decode(f["base64"]) for f in exported["files"]]
    assert any(b"tender/value/amount" in c for c in contents), "the attachment"
    assert any(b"Message-ID: <p1@hacienda.gob.mx>" in c for c in contents), "the raw mail"
    assert "li@mof.gov.example" not in json.dumps(exported), "nobody else's data"

    # A member who is not an admin may not erase anyone
    refused = subprocess.run([*HELPDESK, "privacy", "erase", "ana@hacienda.gob.mx", "--yes", "--by", "tom"], env=env,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1
    assert "may not privacy erase" in " ".join(refused.stderr.split())

    # When the admin erases her
    erased = run_cli(["privacy", "erase", "ana@hacienda.gob.mx", "--yes"], env).stdout
    assert "erased; now known as erased-" in erased

    # Then the management information is byte-identical
    assert run_cli(["report", "--json", "--until", UNTIL], env).stdout == before
    # and her words, name, address, raw mail and attachment are gone; Li's are not
    engine = create_db_engine(settings.resolved_database_url)
    try:
        with engine.connect() as c:
            dump = json.dumps([dict(r._mapping) for table in (MESSAGE, TICKET, CONTACT, IDENTITY) for r in c.execute(select(table))],
                              default=str, ensure_ascii=False)
        entries = audit.entries(engine)
    finally:
        engine.dispose()
    for trace in ("ana@hacienda.gob.mx", "Ana Gómez", "555 0100", "validator fails", "mapping-ana.csv"):
        assert trace not in dump, trace
    assert "li@mof.gov.example" in dump
    assert "registry API" in dump
    gone = before_files - _files(raw)
    assert len(gone) == 3, "her two raw mails and the attachment"
    assert {(e.action, e.outcome, e.actor) for e in entries} == {("privacy.export", "done", "admin"), ("privacy.erase", "done", "admin"),
                                                                ("privacy.erase", "refused", "tom")}
    assert all("ana@" not in json.dumps(e.detail) + e.target for e in entries)
    # Erasing again finds nobody: the address is no longer held
    again = subprocess.run([*HELPDESK, "privacy", "erase", "ana@hacienda.gob.mx", "--yes"], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 1
    assert "nobody with the address" in again.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_retention_empties_closed_tickets_after_the_configured_days(settings: Settings, tmp_path: Path) -> None:
    from config.desk import load_desk  # noqa: PLC0415
    from config.secrets import desk_secret  # noqa: PLC0415
    from intake.archive import FileArchive  # noqa: PLC0415
    from workers.desk.privacy import Privacy  # noqa: PLC0415

    env = settings_env(settings)
    inbox = tmp_path / "mail"
    inbox.mkdir()
    (inbox / "old.eml").write_bytes(make_email(message_id="<old@hacienda.gob.mx>", subject="Old question", body="An old question."))
    (inbox / "new.eml").write_bytes(make_email(sender="li@mof.gov.example", message_id="<new@mof.gov.example>", subject="New",
                                               body="A new question."))
    run_cli(["import", str(inbox)], env)
    run_cli(["worker", "--until-idle"], env, timeout=180)
    engine = create_db_engine(settings.resolved_database_url)
    now = datetime.now(timezone.utc)
    try:
        with engine.begin() as c:  # the old one was resolved 100 days ago; the new one is open
            c.execute(update(TICKET).where(TICKET.c.subject == "Old question").values(status="resolved", resolved_at=now - timedelta(days=100)))
        privacy = Privacy(engine, load_desk(settings), FileArchive(Path(settings.data_dir) / "raw"), desk_secret(settings))
        done = privacy.expire(now, days=90)
        again = privacy.expire(now, days=90)
        with engine.connect() as c:
            texts = {r.subject: (r.text, r.raw_ref) for r in c.execute(select(MESSAGE))}
    finally:
        engine.dispose()
    assert done["messages"] == 1
    assert done["files_deleted"] == 1
    assert again == {"messages": 0, "quarantined": 0, "files_deleted": 0}, "run twice, the same effect"
    assert texts["Old question"] == ("", None)
    assert texts["New"][0].strip() == "A new question."


def test_purged_dead_letters_lose_their_payloads(engine, broker, settings: Settings) -> None:  # noqa: ANN001
    from sqlalchemy import insert  # noqa: PLC0415

    from storage.intake_store import QUARANTINE  # noqa: PLC0415
    from storage.models import utcnow  # noqa: PLC0415
    from workers.ops.dlq import purge  # noqa: PLC0415

    with engine.begin() as c:
        c.execute(insert(QUARANTINE).values(key="dl:1", kind="dead_letter", status="open", queue="intake", reason="DataError",
                                            detail="", source="", payload={"args": ["{\"sender\": \"ana@hacienda.gob.mx\"}"]},
                                            created_at=utcnow()))
    assert purge(broker.client, settings.redis_namespace, engine, ("intake",)) == 1
    with engine.connect() as c:
        row = c.execute(select(QUARANTINE)).one()
    assert (row.status, row.payload) == ("purged", None)
