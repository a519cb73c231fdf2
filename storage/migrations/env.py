"""Alembic environment: always handed a live connection by storage.migrate."""

from __future__ import annotations

from alembic import context

from storage.migrate import include_object
from storage.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `escalation-bot db upgrade`, not the alembic command")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    include_object=include_object,
    # Each migration commits on its own, so one can step outside its transaction to build an index
    # CONCURRENTLY on PostgreSQL (storage/migrate.py holds the lock that keeps replicas apart).
    transaction_per_migration=True,
)
with context.begin_transaction():
    context.run_migrations()
