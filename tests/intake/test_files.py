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
    assert result.queued == 3
    assert result.rejected == 0
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
    assert result.rejected == 1
    assert not sink.messages
    rejected = sink.rejected[0]
    assert rejected.reason == "not_an_email"
    assert rejected.raw_ref in archive
    assert archive.get(rejected.raw_ref) == b"\x00\x01\x02"


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        discover([tmp_path / "nope"])


def test_file_archive_is_content_addressed_and_idempotent(tmp_path: Path) -> None:
    archive = FileArchive(tmp_path)
    ref = archive.put(b"hello")
    assert archive.put(b"hello") == ref
    assert archive.get(ref) == b"hello"
    assert ref in archive
    assert "0" * 64 not in archive
    with pytest.raises(KeyError):
        archive.get("../../etc/passwd")


class _ExplodingIngestor(EmailIngestor):
    """The real ingestor, except that a mail with the marker subject makes it raise what no parser should."""

    def ingest(self, raw: bytes, source: str) -> bool:
        if b"Subject: RECURSE-ME" in raw:
            raise RecursionError("maximum recursion depth exceeded")
        return super().ingest(raw, source)


def test_a_file_gone_before_it_is_read_is_quarantined_and_the_rest_imported(tmp_path: Path) -> None:
    # Given three .eml files and a Maildir of two, discovered, after which one file of each disappears
    for i in (1, 2, 3):
        (tmp_path / f"{i}.eml").write_bytes(make_email(message_id=f"<f{i}@x.org>"))
    maildir = mailbox.Maildir(tmp_path / "Maildir", create=True)
    keys = [maildir.add(make_email(message_id=f"<md{i}@x.org>")) for i in range(2)]
    items = discover([tmp_path / "1.eml", tmp_path / "2.eml", tmp_path / "3.eml", tmp_path / "Maildir"])
    (tmp_path / "2.eml").unlink()
    maildir.remove(keys[0])
    adapter, sink, _ = _adapter()
    # When imported
    result = adapter.ingest_all(items)
    # Then each unreadable item is quarantined with the reason, and every other one is queued
    assert (result.queued, result.rejected) == (3, 2)
    assert sorted(m.external_id for m in sink.messages) == ["f1@x.org", "f3@x.org", "md1@x.org"]
    assert [r.reason for r in sink.rejected] == ["unreadable", "unreadable"]
    assert sink.rejected[0].source == f"file:{tmp_path / '2.eml'}"
    assert sink.rejected[0].detail.startswith("FileNotFoundError")
    assert sink.rejected[1].source.startswith("maildir:")


def test_a_mail_whose_ingestion_raises_is_quarantined_with_its_raw_bytes(tmp_path: Path) -> None:
    # Given a mail that makes ingestion raise RecursionError between two ordinary ones
    (tmp_path / "1.eml").write_bytes(make_email(message_id="<a@x.org>"))
    (tmp_path / "2.eml").write_bytes(make_email(message_id="<bomb@x.org>", subject="RECURSE-ME"))
    (tmp_path / "3.eml").write_bytes(make_email(message_id="<c@x.org>"))
    sink, archive = MemorySink(), MemoryArchive()
    adapter = FileAdapter(_ExplodingIngestor(sink, archive, Limits()))
    # When imported, then it is quarantined as an adapter error with the exception and its raw bytes, and the import goes on
    result = adapter.ingest_all(discover([tmp_path]))
    assert (result.queued, result.rejected) == (2, 1)
    [rejected] = sink.rejected
    assert rejected.reason == "adapter_error"
    assert rejected.detail.startswith("RecursionError: maximum recursion depth")
    assert rejected.raw_ref in archive
    assert b"RECURSE-ME" in archive.get(rejected.raw_ref)
    assert rejected.source == f"file:{tmp_path / '2.eml'}"


def test_a_queue_failure_still_stops_the_import(tmp_path: Path) -> None:
    from intake.errors import SinkError

    class QueueDown(MemorySink):
        def put(self, message) -> None:  # noqa: ANN001
            raise SinkError("redis went away")

    (tmp_path / "1.eml").write_bytes(make_email(message_id="<a@x.org>"))
    adapter = FileAdapter(EmailIngestor(QueueDown(), MemoryArchive(), Limits()))
    with pytest.raises(SinkError):
        adapter.ingest_all(discover([tmp_path]))
