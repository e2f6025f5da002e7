"""SQLite's writers take turns: the threads of a process on a lock, processes on an flock of ``<database>-writer``."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from storage.db import create_db_engine

ROOT = Path(__file__).resolve().parents[2]


def _locked_by_someone(path: Path) -> bool:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def test_a_write_transaction_holds_the_file_lock_until_it_commits(tmp_path: Path) -> None:
    database = tmp_path / "helpdesk.db"
    engine = create_db_engine(f"sqlite:///{database}")
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (n INTEGER)"))
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO t VALUES (1)"))
            assert _locked_by_someone(Path(f"{database}-writer"))
        assert not _locked_by_someone(Path(f"{database}-writer"))
        with engine.connect().execution_options(readonly=True) as reading:  # a reader takes no turn
            reading.execute(text("SELECT count(*) FROM t"))
            assert not _locked_by_someone(Path(f"{database}-writer"))
        with pytest.raises(RuntimeError), engine.begin() as connection:  # a rolled-back write gives its turn back too
            connection.execute(text("INSERT INTO t VALUES (2)"))
            raise RuntimeError
        assert not _locked_by_someone(Path(f"{database}-writer"))
    finally:
        engine.dispose()


def test_a_writer_of_another_process_waits_for_the_turn_and_goes_on_when_it_is_given_back(tmp_path: Path) -> None:
    # Given a write transaction open in this process
    database = tmp_path / "helpdesk.db"
    engine = create_db_engine(f"sqlite:///{database}")
    other = None
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (n INTEGER)"))
        writing = engine.connect()
        transaction = writing.begin()
        writing.execute(text("INSERT INTO t VALUES (1)"))
        # When another process writes to the same database
        script = textwrap.dedent(f"""
            import sys, time
            sys.path.insert(0, {str(ROOT)!r})
            from sqlalchemy import text
            from storage.db import create_db_engine
            engine = create_db_engine({f"sqlite:///{database}"!r})
            print("begin", flush=True)
            with engine.begin() as connection:
                count = connection.execute(text("SELECT count(*) FROM t")).scalar()
                connection.execute(text("INSERT INTO t VALUES (2)"))
            print("saw", count, flush=True)
        """)
        other = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert other.stdout is not None
        assert other.stdout.readline().strip() == "begin"
        time.sleep(0.5)
        # Then it waits while this one writes
        assert other.poll() is None
        transaction.commit()
        writing.close()
        # and goes on once it is done: it saw the committed row, wrote its own
        out, errors = other.communicate(timeout=60)
        assert other.returncode == 0, errors
        assert out.strip() == "saw 1"
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM t")).scalar() == 2
    finally:
        if other is not None and other.poll() is None:
            other.kill()
            other.wait()
        engine.dispose()

