"""an index of the escalations still in motion, for /metrics

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06

A partial index of the open and claimed escalations by workspace, queue, severity and status: what
a Prometheus scrape counts every few seconds. It holds a few dozen rows however long the history,
so the count reads only them whatever the planner believes: SQLite, once ANALYZE has run, took the
status index for unselective (a quarter of the rows per status, on average) and read a million
rows' worth of another index (78 ms a scrape with a year of history, bench/scrape.py).

Expand only: the releases before ignore it. Built CONCURRENTLY on PostgreSQL: the table is live.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

serves_from = "0008"
reversible = True

IN_MOTION = sa.text("status IN ('open', 'claimed')")
COLUMNS = ["workspace_id", "queue_id", "severity", "status"]


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.create_index(
                "ix_handoffs_in_motion",
                "handoffs",
                COLUMNS,
                postgresql_where=IN_MOTION,
                postgresql_concurrently=True,
                if_not_exists=True,
            )
        return
    op.create_index("ix_handoffs_in_motion", "handoffs", COLUMNS, sqlite_where=IN_MOTION)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.drop_index("ix_handoffs_in_motion", postgresql_concurrently=True, if_exists=True)
        return
    op.drop_index("ix_handoffs_in_motion", table_name="handoffs")
