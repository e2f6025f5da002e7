"""The raw archive on disk: content-addressed, written atomically and durably, one at a time or a batch at once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from intake.archive import FileArchive, sha256_hex


def test_a_batch_is_stored_under_its_hashes_in_order(tmp_path: Path) -> None:
    # Given a batch with the same bytes twice
    archive = FileArchive(tmp_path / "raw")
    items = [f"mail {i}".encode() for i in range(50)] + [b"mail 7"]
    # When it is stored at once
    refs = archive.put_many(items)
    # Then each item is under its sha256, readable back, and the repeat is one file
    assert refs == [sha256_hex(data) for data in items]
    assert all(archive.get(ref) == data for ref, data in zip(refs, items))
    assert len(list((tmp_path / "raw").rglob("*.gz"))) == 50


def test_nothing_but_finished_files_is_left_and_only_the_owner_can_read_them(tmp_path: Path) -> None:
    archive = FileArchive(tmp_path / "raw")
    archive.put_many([os.urandom(2000) for _ in range(20)])
    archive.put(b"one more")
    files = [p for p in (tmp_path / "raw").rglob("*") if p.is_file()]
    assert len(files) == 21
    assert not [p for p in files if p.name.startswith(".tmp-")]
    assert {p.stat().st_mode & 0o777 for p in files} == {0o600}
    assert {p.stat().st_mode & 0o777 for p in (tmp_path / "raw").rglob("*") if p.is_dir()} == {0o700}


def test_a_folder_removed_behind_its_back_is_made_again(tmp_path: Path) -> None:
    archive = FileArchive(tmp_path / "raw")
    ref = archive.put(b"first")
    archive.delete(ref)
    os.rmdir(archive._path(ref).parent)
    assert archive.put(b"first") == ref
    assert archive.get(ref) == b"first"


def test_a_failed_write_leaves_no_temporary_file_and_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = FileArchive(tmp_path / "raw")

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        archive.put_many([b"a", b"b", b"c"])
    assert not [p for p in (tmp_path / "raw").rglob("*") if p.is_file()]
