"""Public holidays kept in the desk's file: the library's dates, read back by a new process without importing it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import importlib.metadata

import holidays
import pytest

from workers.desk import public_holidays

ROOT = Path(__file__).resolve().parents[2]

# A new process: the dates of GB 2026 read with the file at argv[1], and whether `holidays` was imported for them.
READ_BACK = """
import json, sys
from pathlib import Path
from workers.desk import public_holidays
public_holidays.keep_in(Path(sys.argv[1]))
days = public_holidays.dates("GB", 2026)
print(json.dumps({"days": sorted(d.isoformat() for d in days), "imported": "holidays" in sys.modules}))
"""


@pytest.fixture
def kept(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "cache" / "public-holidays.json"
    public_holidays.keep_in(path)
    yield path
    public_holidays.keep_in(None)


def library(country: str, year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays(country, years=year).keys())


def read_back(path: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", READ_BACK, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    return json.loads(done.stdout)


def test_the_dates_are_the_librarys_and_a_new_process_reads_them_without_importing_it(kept: Path) -> None:
    # Given dates worked out in this process for three countries over two years
    for country in ("GB", "FR", "MX"):
        for year in (2026, 2027):
            assert public_holidays.dates(country, year) == library(country, year)

    # When a new process asks for one of them with the same file
    answer = read_back(kept)

    # Then it has the library's dates, read from the file: `holidays` was never imported
    assert answer == {"days": sorted(d.isoformat() for d in library("GB", 2026)), "imported": False}


def test_a_file_of_another_package_or_malformed_or_too_large_is_ignored_and_written_again(kept: Path) -> None:
    kept.parent.mkdir(parents=True)
    wrong = {"GB:2026": ["2026-02-30"]}  # would be a wrong answer if it were believed
    for content in (json.dumps({"package": "another holidays:1:1", "dates": {"GB:2026": ["2026-06-01"]}}),
                    "{not json", json.dumps(["a list"]), json.dumps({"package": None, "dates": wrong}),
                    " " * (public_holidays.MAX_FILE_BYTES + 1)):
        # Given a file that is not this package's, or not a cache at all
        kept.write_text(content)
        public_holidays.dates.cache_clear()  # as in a new process

        # Then the dates are the library's, and the file holds them for the next process
        assert public_holidays.dates("GB", 2026) == library("GB", 2026)
        assert read_back(kept)["imported"] is False


def test_a_file_that_cannot_be_written_leaves_the_dates_right(tmp_path: Path) -> None:
    # Given a file whose folder is a file
    (tmp_path / "cache").write_text("not a folder")
    public_holidays.keep_in(tmp_path / "cache" / "public-holidays.json")
    try:
        # Then the dates are still worked out, and no draft is left behind
        assert public_holidays.dates("FR", 2026) == library("FR", 2026)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]
    finally:
        public_holidays.keep_in(None)


def test_an_upgraded_package_is_not_answered_from_the_old_packages_dates(kept: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the file written for the installed package, then doctored (as if the old release had other dates)
    public_holidays.dates("GB", 2026)
    doctored = json.loads(kept.read_text())
    doctored["dates"]["GB:2026"] = ["2026-06-01"]
    kept.write_text(json.dumps(doctored))
    assert read_back(kept)["days"] == ["2026-06-01"]  # the file is what a new process believes

    # When the package is another (a new release: its version file is another size or age)
    monkeypatch.setattr(public_holidays, "_package_identity", lambda: "holidays/version.py:607:1")
    public_holidays.dates.cache_clear()  # as in a new process

    # Then the dates are worked out again and the file is rewritten for it
    assert public_holidays.dates("GB", 2026) == library("GB", 2026)
    assert json.loads(kept.read_text())["package"] == "holidays/version.py:607:1"


def test_the_packages_identity_names_its_release() -> None:
    # An upgrade whose files all keep one modification time (reproducible builds) is still another key: the key names
    # the installed release, not only a file's size and age
    identity = public_holidays._package_identity()
    assert identity is not None
    assert f"holidays-{importlib.metadata.version('holidays')}.dist-info" in identity


def test_keeping_in_the_same_file_again_keeps_what_was_loaded(kept: Path) -> None:
    # Given dates loaded before a worker pool forks its children (each child builds its services: keep_in again)
    public_holidays.dates("GB", 2026)
    hits = public_holidays.dates.cache_info().hits
    # When the same file is named again
    public_holidays.keep_in(kept)
    # Then the dates are still in memory, not read again
    public_holidays.dates("GB", 2026)
    assert public_holidays.dates.cache_info().hits == hits + 1
