"""The wiring of a process: a database is migrated when it is behind, and only then is Alembic asked; an embedded
Redis may start in the background while the process goes on."""

from __future__ import annotations

import shutil
from pathlib import Path

from config.embedded_redis import start_embedded_redis, stop_embedded_redis
from config.settings import Settings, load_settings
from ops.runtime import Runtime
from storage import schema
from storage.db import MIGRATION_VERSIONS, at_newest_migration, create_db_engine, newest_migration


def test_the_newest_migration_read_from_the_files_is_alembics_head() -> None:
    assert newest_migration() == schema.head_revision()


def test_a_new_database_is_migrated_then_known_to_be_current(settings: Settings) -> None:
    # Given a database nothing has migrated
    with Runtime(settings) as runtime:
        assert not at_newest_migration(runtime.database)
        # When the process asks for its engine
        engine = runtime.engine
        # Then it is at the newest migration, and known to be
        assert schema.current_revision(engine) == schema.head_revision()
        assert at_newest_migration(engine)


def test_a_database_behind_is_brought_to_the_newest_migration(settings: Settings) -> None:
    # Given a database migrated by an older release
    older = create_db_engine(settings.database_url)
    schema.upgrade(older, "0005")
    older.dispose()
    with Runtime(settings) as runtime:
        assert not at_newest_migration(runtime.database)
        # When
        engine = runtime.engine
        # Then
        assert schema.current_revision(engine) == schema.head_revision()


def test_migration_files_it_cannot_follow_leave_the_decision_to_alembic(tmp_path: Path, settings: Settings) -> None:
    # Given a current database, and the migrations with a merge (two parents) added
    with Runtime(settings) as runtime:
        engine = runtime.engine
        versions = Path(shutil.copytree(MIGRATION_VERSIONS, tmp_path / "versions", ignore=shutil.ignore_patterns("__pycache__")))
        (versions / "9999_merge.py").write_text('revision = "9999"\ndown_revision = ("0001", "0002")\n', encoding="utf-8")
        # When / Then: no head is claimed, so the database is not taken for current
        assert newest_migration(versions) is None
        assert not at_newest_migration(engine, versions)
        # and two heads are no head either
        (versions / "9999_merge.py").write_text('revision = "9999"\ndown_revision = "0001"\n', encoding="utf-8")
        assert newest_migration(versions) is None


def test_an_embedded_redis_started_in_the_background_is_the_one_the_process_uses(tmp_path: Path) -> None:
    # Given a desk on the embedded Redis
    settings = load_settings(environ={}, data_dir=tmp_path / "data")
    try:
        with Runtime(settings) as runtime:
            # When its server is started in the background
            runtime.start_redis_in_background()
            # Then the process reaches it, at the one URL of the data folder
            assert runtime.redis.ping()
            assert runtime.redis_url == start_embedded_redis(settings.data_dir)
    finally:
        stop_embedded_redis(settings.data_dir)
