"""The raw archive on disk: content-addressed, written atomically and durably, one at a time or a batch at once."""

from __future__ import annotations

import ctypes
import gzip
import os
from pathlib import Path

import pytest

import intake.archive as archive_module
from intake.archive import FileArchive, sha256_hex


def test_a_batch_is_stored_under_its_hashes_in_order(tmp_path: Path, flushing: str) -> None:
    # Given a batch with the same bytes twice
    archive = FileArchive(tmp_path / "raw")
    items = [f"mail {i}".encode() for i in range(50)] + [b"mail 7"]
    # When it is stored at once
    refs = archive.put_many(items)
    # Then each item is under its sha256, readable back, and the repeat is one file
    assert refs == [sha256_hex(data) for data in items]
    assert all(archive.get(ref) == data for ref, data in zip(refs, items))
    assert len(list((tmp_path / "raw").rglob("*.gz"))) == 50


def test_nothing_but_finished_files_is_left_and_only_the_owner_can_read_them(tmp_path: Path, flushing: str) -> None:
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


@pytest.fixture(params=["syncfs", "fsync"])
def flushing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test twice: flushing with syncfs(2) (Linux), and with an fsync of each file and folder (elsewhere)."""
    if request.param == "fsync":
        monkeypatch.setattr(archive_module, "_syncfs", lambda: None)
    elif archive_module._syncfs() is None:
        pytest.fail("syncfs(2) is not available from the C library here")
    return request.param


def test_a_batch_is_written_then_flushed_then_named_then_flushed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flushing: str) -> None:
    # Given a batch of three new items
    archive = FileArchive(tmp_path / "raw")
    items = [b"one", b"two", b"three"]
    seen: list[tuple[set[str], set[bytes], list[Path]]] = []
    flush = archive._flush

    def watched(paths: list[Path]) -> None:
        files = [p for p in (tmp_path / "raw").rglob("*") if p.is_file()]
        seen.append(({p.name for p in files if not p.name.startswith(".tmp-")},
                     {gzip.decompress(p.read_bytes()) for p in files if p.name.startswith(".tmp-")}, list(paths)))
        flush(paths)

    monkeypatch.setattr(archive, "_flush", watched)
    # When it is stored
    refs = archive.put_many(items)
    # Then the first flush finds every item whole under a temporary name and no final name yet;
    # the second finds every final name and no temporary file left
    assert len(seen) == 2
    (names_1, temporary_1, paths_1), (names_2, temporary_2, paths_2) = seen
    assert (names_1, temporary_1) == (set(), set(items))
    assert (names_2, temporary_2) == ({f"{ref}.gz" for ref in refs}, set())
    # … flushing the temporary files, then the folders that got the names (what an fsync of each needs)
    assert sorted(p.name[:5] for p in paths_1) == [".tmp-"] * 3
    assert sorted(paths_2) == sorted({archive._path(ref).parent for ref in refs})
    assert [archive.get(ref) for ref in refs] == items


def test_bytes_already_stored_are_not_written_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = FileArchive(tmp_path / "raw")
    archive.put_many([b"kept", b"also kept"])
    flushes: list[int] = []
    monkeypatch.setattr(archive, "_flush", lambda paths: flushes.append(len(paths)))
    assert archive.put_many([b"kept", b"also kept"]) == [sha256_hex(b"kept"), sha256_hex(b"also kept")]
    assert flushes == []


def test_a_failed_flush_leaves_no_file_and_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flushing: str) -> None:
    # Given a file system that cannot make the batch durable
    archive = FileArchive(tmp_path / "raw")

    def full_disk(*args: object) -> int:
        raise OSError(28, "No space left on device")

    if flushing == "fsync":
        monkeypatch.setattr(os, "fsync", full_disk)
    else:
        monkeypatch.setattr(archive_module, "_syncfs", lambda: lambda fd: (ctypes.set_errno(28), -1)[1])
    # When a batch is stored, then it fails with the file system's error, and nothing is left behind:
    # no temporary file, and no name that a later put would trust
    with pytest.raises(OSError, match="No space left"):
        archive.put_many([b"a", b"b", b"c"])
    with pytest.raises(OSError, match="No space left"):
        archive.put(b"d")
    assert not [p for p in (tmp_path / "raw").rglob("*") if p.is_file()]


def test_a_failed_write_leaves_no_temporary_file_and_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a batch whose second item cannot be written
    archive = FileArchive(tmp_path / "raw")
    write = archive._write

    def failing(ref: str, data: bytes) -> tuple[Path, Path]:
        if data == b"b":
            raise OSError(28, "No space left on device")
        return write(ref, data)

    monkeypatch.setattr(archive, "_write", failing)
    # When the batch is stored, then it fails and the items written meanwhile are not left behind
    with pytest.raises(OSError, match="No space left"):
        archive.put_many([b"a", b"b", b"c"])
    assert not [p for p in (tmp_path / "raw").rglob("*") if p.is_file()]


def test_files_are_one_folder_deep_and_those_of_the_older_two_level_layout_are_still_found(tmp_path: Path) -> None:
    # Given an archive written before 2026-12-07: two levels of folders (root/ab/cd/<sha256>.gz)
    archive = FileArchive(tmp_path / "raw")
    old = b"archived by an earlier version"
    old_ref = sha256_hex(old)
    legacy = tmp_path / "raw" / old_ref[:2] / old_ref[2:4] / f"{old_ref}.gz"
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(gzip.compress(old))
    # When new bytes and the old bytes again are stored
    new_ref, again = archive.put_many([b"archived now", old])
    # Then the new file is one folder deep, and the old bytes are found where they are, not written a second time
    assert (tmp_path / "raw" / new_ref[:2] / f"{new_ref}.gz").is_file()
    assert (again, old_ref in archive, archive.get(old_ref)) == (old_ref, True, old)
    assert sorted(p.relative_to(tmp_path / "raw") for p in (tmp_path / "raw").rglob("*.gz")) == sorted(
        [legacy.relative_to(tmp_path / "raw"), Path(new_ref[:2]) / f"{new_ref}.gz"])
    # … and erasure removes it there
    assert (archive.delete(old_ref), legacy.exists(), old_ref in archive) == (True, False, False)
    assert not archive.delete(old_ref)
    with pytest.raises(KeyError):
        archive.get(old_ref)
