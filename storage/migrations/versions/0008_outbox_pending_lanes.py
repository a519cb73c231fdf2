"""outbox: an index of the messages still to send, by escalation and kind

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27

The lease hands out only the head of each lane (an escalation's messages of one kind, oldest
first) and nothing of an escalation before its card: two "is there an earlier pending one?" checks
per candidate row. With only the (status, next_attempt_at) index each check read every pending row,
so a lease cost grew with the square of the backlog (1.6 ms a lease on PostgreSQL under
bench/intake.py's load, the largest part of its CPU per escalation). A partial index of pending
rows by (handoff_id, kind, id) answers each check with one lookup, and stays as small as the backlog.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")
# Releases from 0007 on serve this schema (an index changes nothing a query sees), and it can go again.
serves_from = "0007"
reversible = True


def upgrade() -> None:
    # On PostgreSQL the outbox is written while this runs (the previous release serves): build the
    # index CONCURRENTLY, which takes no lock that blocks writes, outside the migration's transaction.
    # IF NOT EXISTS: a concurrent build that was interrupted leaves an invalid index behind; see
    # docs/operations.md. SQLite has one writer anyway.
    if op.get_context().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.create_index(
                "ix_outbox_pending_lanes",
                "outbox",
                ["handoff_id", "kind", "id"],
                postgresql_where=PENDING,
                postgresql_concurrently=True,
                if_not_exists=True,
            )
        return
    op.create_index("ix_outbox_pending_lanes", "outbox", ["handoff_id", "kind", "id"], sqlite_where=PENDING)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.drop_index("ix_outbox_pending_lanes", table_name="outbox", postgresql_concurrently=True, if_exists=True)
        return
    op.drop_index("ix_outbox_pending_lanes", table_name="outbox")
