"""The public holidays of a country in a year, from the ``holidays`` package, kept in a file of the desk's own.

``import holidays`` costs a worker 60–190 ms of CPU at every start on the 2-core machine (its ``countries``
package imports all 250 countries' modules) for the few dozen dates its SLA clocks ask about, and those dates
change only with the package. So a process the desk starts names a file (``keep_in``, from its data folder),
and the dates worked out are kept there under the identity of the installed package (its installer's
record: its ``holidays-<version>.dist-info`` folder's name and its RECORD file's size and modification time, so that
a new release is another key even where installs fix every file's time). Each country and year is then read from
the file, and ``holidays`` is imported only for one the file lacks. Without that record (the package not installed
by a tool that writes one) nothing is kept.

The file is a cache, never an authority: one that cannot be read, is malformed, too large or from another
package is ignored (and replaced at the next write); a write that fails leaves the dates worked out in memory.
Two processes writing at once each replace the file whole (a temporary file, then ``os.replace``); the loser's
entries are worked out again by whichever process next lacks them.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import tempfile
import threading
from datetime import date
from pathlib import Path

MAX_FILE_BYTES = 1024 * 1024  # a desk's few countries over a few years: a few KiB
_kept_in: Path | None = None
_writing = threading.Lock()


def keep_in(path: Path | None) -> None:
    """Keep the dates worked out in ``path`` and read them from it (None: work them out in every process).

    The same path again changes nothing: a worker pool's children keep the dates their parent loaded before forking."""
    global _kept_in  # noqa: PLW0603 - set once at a process's start, like the in-memory cache below
    if path == _kept_in:
        return
    _kept_in = path
    dates.cache_clear()


@functools.lru_cache(maxsize=256)
def dates(country: str, year: int) -> frozenset[date]:
    """The public holidays of ``country`` (ISO 3166 code, upper case) in ``year``; remembered for the process."""
    path, package = _kept_in, _package_identity()
    key = f"{country}:{year}"
    if path is not None and package is not None:
        if (known := _read(path, package).get(key)) is not None:
            return known
    found = _work_out(country, year)
    if path is not None and package is not None:
        _write(path, package, key, found)
    return found


def _work_out(country: str, year: int) -> frozenset[date]:
    import holidays  # noqa: PLC0415 - the point of this module is to need it rarely

    return frozenset(holidays.country_holidays(country, years=year).keys())


def _package_identity() -> str | None:
    """The installed ``holidays`` package's record: its dist-info folder (the version is in its name) and that
    folder's RECORD file's size and modification time; None when there is not exactly one such folder beside it."""
    spec = importlib.util.find_spec("holidays")
    if spec is None or spec.origin is None:
        return None
    found = list(Path(spec.origin).parent.parent.glob("holidays-*.dist-info"))
    if len(found) != 1:
        return None
    try:
        stat = (found[0] / "RECORD").stat()
    except OSError:
        return None
    return f"{found[0]}:{stat.st_size}:{stat.st_mtime_ns}"


def _read(path: Path, package: str) -> dict[str, frozenset[date]]:
    """The file's dates, if it was written for ``package``; nothing if it is missing, unreadable or malformed."""
    try:
        with path.open("rb") as file:
            text = file.read(MAX_FILE_BYTES + 1)
        if len(text) > MAX_FILE_BYTES:
            return {}
        kept = json.loads(text)
        if not isinstance(kept, dict) or kept.get("package") != package or not isinstance(kept.get("dates"), dict):
            return {}
        return {key: frozenset(date.fromisoformat(day) for day in days) for key, days in kept["dates"].items()
                if isinstance(key, str) and isinstance(days, list) and all(isinstance(day, str) for day in days)}
    except (OSError, ValueError, TypeError):
        return {}


def _write(path: Path, package: str, key: str, found: frozenset[date]) -> None:
    """Add ``key``'s dates to the file (replaced whole); a failure leaves them in memory only."""
    with _writing:
        kept = _read(path, package)  # read again, under the lock: another process may have added dates since
        kept[key] = found
        text = json.dumps({"package": package, "dates": {k: sorted(d.isoformat() for d in v) for k, v in sorted(kept.items())}})
        draft: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, draft = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # a new file: no link is followed
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(text)
            os.replace(draft, path)
        except OSError:
            if draft is not None:
                with contextlib.suppress(OSError):
                    os.unlink(draft)
