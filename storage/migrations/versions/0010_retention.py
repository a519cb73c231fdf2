"""retention: when an escalation's text was erased, and indexes to find what is due

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

`handoffs.erased_at`: set when the free text of a closed escalation is erased after the retention
period (or when the person who typed it is forgotten); its numbers stay. A partial index of the
closed escalations not erased yet, by workspace and last change, so the scheduler finds the next
batch without reading the history; and one of processed event ids by arrival, which are now pruned.

Expand only: the release before (0.2.0, head 0009) ignores the column and the indexes. The indexes
are built CONCURRENTLY on PostgreSQL, outside the migration's transaction: the tables are live.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

serves_from = "0008"
reversible = True

UNERASED = sa.text("erased_at IS NULL AND status IN ('resolved', 'cancelled')")


def upgrade() -> None:
    op.add_column("handoffs", sa.Column("erased_at", sa.DateTime(timezone=True)))
    if op.get_context().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.create_index(
                "ix_handoffs_unerased",
                "handoffs",
                ["workspace_id", "updated_at"],
                postgresql_where=UNERASED,
                postgresql_concurrently=True,
                if_not_exists=True,
            )
            op.create_index(
                "ix_processed_events_received_at",
                "processed_events",
                ["received_at"],
                postgresql_concurrently=True,
                if_not_exists=True,
            )
        return
    op.create_index("ix_handoffs_unerased", "handoffs", ["workspace_id", "updated_at"], sqlite_where=UNERASED)
    op.create_index("ix_processed_events_received_at", "processed_events", ["received_at"])


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.drop_index("ix_processed_events_received_at", postgresql_concurrently=True, if_exists=True)
            op.drop_index("ix_handoffs_unerased", postgresql_concurrently=True, if_exists=True)
        op.drop_column("handoffs", "erased_at")
        return
    op.drop_index("ix_processed_events_received_at", table_name="processed_events")
    op.drop_index("ix_handoffs_unerased", table_name="handoffs")
    # Natively (SQLite 3.35 and later): a rebuilt table would lose the full-text search triggers.
    op.execute("ALTER TABLE handoffs DROP COLUMN erased_at")
