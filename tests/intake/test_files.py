from __future__ import annotations

import mailbox
from pathlib import Path

import pytest

from intake.archive import FileArchive, MemoryArchive
from intake.base import MemorySink
from intake.email_intake import EmailIngestor
from intake.files import FileAdapter, discover
from intake.mime import Limits
from tests.factories import make_email


def _adapter() -> tuple[FileAdapter, MemorySink, MemoryArchive]:
    sink, archive = MemorySink(), MemoryArchive()
    return FileAdapter(EmailIngestor(sink, archive, Limits())), sink, archive


def test_folder_of_eml_files_in_name_order(tmp_path: Path) -> None:
    for i in (2, 1, 3):
        (tmp_path / f"{i}.eml").write_bytes(make_email(message_id=f"<m{i}@x.org>"))
    (tmp_path / "notes.txt").write_text("not mail")
    adapter, sink, archive = _adapter()
    result = adapter.ingest_all(discover([tmp_path]))
    assert result.queued == 3 and result.rejected == 0
    assert [m.external_id for m in sink.messages] == ["m1@x.org", "m2@x.org", "m3@x.org"]
    assert all(m.raw_ref in archive for m in sink.messages)


def test_mbox_and_maildir(tmp_path: Path) -> None:
    box = mailbox.mbox(tmp_path / "in.mbox")
    for i in range(3):
        box.add(make_email(message_id=f"<mb{i}@x.org>"))
    box.flush()
    maildir = mailbox.Maildir(tmp_path / "Maildir", create=True)
    maildir.add(make_email(message_id="<md@x.org>"))
    adapter, sink, _ = _adapter()
    adapter.ingest_all(discover([tmp_path / "in.mbox", tmp_path / "Maildir"]))
    assert sorted(m.external_id for m in sink.messages) == ["mb0@x.org", "mb1@x.org", "mb2@x.org", "md@x.org"]
    assert sink.messages[0].source.startswith("mbox:")


def test_unreadable_item_is_quarantined_with_reason_and_raw_kept(tmp_path: Path) -> None:
    (tmp_path / "junk.eml").write_bytes(b"\x00\x01\x02")
    adapter, sink, archive = _adapter()
    result = adapter.ingest_all(discover([tmp_path]))
    assert result.rejected == 1 and not sink.messages
    rejected = sink.rejected[0]
    assert rejected.reason == "not_an_email"
    assert rejected.raw_ref in archive and archive.get(rejected.raw_ref) == b"\x00\x01\x02"


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        discover([tmp_path / "nope"])


def test_file_archive_is_content_addressed_and_idempotent(tmp_path: Path) -> None:
    archive = FileArchive(tmp_path)
    ref = archive.put(b"hello")
    assert archive.put(b"hello") == ref
    assert archive.get(ref) == b"hello"
    assert ref in archive and "0" * 64 not in archive
    with pytest.raises(KeyError):
        archive.get("../../etc/passwd")
