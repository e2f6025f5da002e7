"""Alembic environment. Every table is declared in ``storage.models`` (autogenerate only sees these)."""

from __future__ import annotations

from alembic import context

from storage.models import declare_partial_indexes, metadata

target_metadata = metadata


def run_migrations_online() -> None:
    connection = context.config.attributes["connection"]
    declare_partial_indexes(connection.dialect.name)  # what the tables are compared with includes their conditions
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite needs batch mode to alter tables
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `helpdesk db upgrade`")
run_migrations_online()
