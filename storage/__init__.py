"""Storage: SQLModel tables, Alembic migrations, idempotent writes and MI queries (SQLite or PostgreSQL)."""
