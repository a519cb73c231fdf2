"""Persistence: tables, queries, the outbox, migrations."""
