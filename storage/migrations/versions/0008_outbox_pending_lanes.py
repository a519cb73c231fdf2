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


def upgrade() -> None:
    op.create_index(
        "ix_outbox_pending_lanes",
        "outbox",
        ["handoff_id", "kind", "id"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_pending_lanes", table_name="outbox")
