"""Storage: the tables (SQLAlchemy Core, with SQLModel classes), Alembic migrations, idempotent writes and MI queries (SQLite or PostgreSQL)."""
