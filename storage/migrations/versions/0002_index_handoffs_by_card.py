"""index handoffs by card

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("handoffs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_handoffs_workspace_id_card_channel_card_ref"),
            ["workspace_id", "card_channel", "card_ref"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("handoffs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_handoffs_workspace_id_card_channel_card_ref"))
