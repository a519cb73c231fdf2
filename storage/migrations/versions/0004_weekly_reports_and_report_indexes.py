"""weekly reports and report indexes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "weekly_reports",
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("week_start", sa.Date(), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_weekly_reports_workspace_id_workspaces")
        ),
        sa.PrimaryKeyConstraint("workspace_id", "week_start", name=op.f("pk_weekly_reports")),
    )
    with op.batch_alter_table("handoff_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_handoff_events_handoff_id"))
        batch_op.drop_index(batch_op.f("ix_handoff_events_workspace_id_at"))
        batch_op.create_index(batch_op.f("ix_handoff_events_handoff_id_kind"), ["handoff_id", "kind"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_handoff_events_workspace_id_kind_at"), ["workspace_id", "kind", "at"], unique=False
        )

    with op.batch_alter_table("handoffs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_handoffs_status_created_at"), ["status", "created_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_handoffs_workspace_id_created_at"), ["workspace_id", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("handoffs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_handoffs_workspace_id_created_at"))
        batch_op.drop_index(batch_op.f("ix_handoffs_status_created_at"))

    with op.batch_alter_table("handoff_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_handoff_events_workspace_id_kind_at"))
        batch_op.drop_index(batch_op.f("ix_handoff_events_handoff_id_kind"))
        batch_op.create_index(batch_op.f("ix_handoff_events_workspace_id_at"), ["workspace_id", "at"], unique=False)
        batch_op.create_index(batch_op.f("ix_handoff_events_handoff_id"), ["handoff_id"], unique=False)

    op.drop_table("weekly_reports")
