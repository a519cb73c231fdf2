"""queues: several per workspace, each escalation in one, moves between them

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26

Every workspace gets its default queue ("General"): its channels and people stay where they
were (the workspace row, which falls back to the settings in `.env`), so an existing install keeps
working unchanged. Every existing escalation is put in its workspace's default queue, arriving
there when it was created. `handoffs.queue_id` has no foreign key: adding one on SQLite would
rebuild the table (and drop its full-text triggers); the code keeps it inside the workspace.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

DEFAULT_QUEUE = "General"


def upgrade() -> None:
    op.create_table(
        "queues",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("workspace_id", sa.Integer, sa.ForeignKey("workspaces.id"), nullable=False),
        sa.Column("name", sa.String(80), nullable=False),
        # Lower-case names a junior may type before a colon (`/escalate billing: …`).
        sa.Column("aliases", sa.JSON),
        sa.Column("is_default", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("escalation_channel", sa.String(255)),
        sa.Column("leads_channel", sa.String(255)),
        # Seniors, leads to DM, reminder and lead-alert minutes, the channels it serves.
        sa.Column("settings", sa.JSON),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("workspace_id", "name", name="uq_queues_workspace_id_name"),
    )
    op.add_column("handoffs", sa.Column("queue_id", sa.Integer))
    op.add_column("handoffs", sa.Column("queue_arrived_at", sa.DateTime(timezone=True)))
    op.add_column("handoffs", sa.Column("moves", sa.Integer, nullable=False, server_default="0"))
    # Each hand-over, for the card: [{from, to, by, note, tried, at}], oldest first.
    op.add_column("handoffs", sa.Column("handovers", sa.JSON))
    # Who cancelled it (its requester), and when: a cancelled card says so.
    op.add_column("handoffs", sa.Column("cancelled_by", sa.String(64)))
    op.add_column("handoffs", sa.Column("cancelled_at", sa.DateTime(timezone=True)))
    op.create_index("ix_handoffs_workspace_id_queue_id_status", "handoffs", ["workspace_id", "queue_id", "status"])

    conn = op.get_bind()
    now = datetime.now(UTC)
    if conn.dialect.name == "sqlite":
        now = now.replace(tzinfo=None)  # naive UTC text, as the tables' UTCDateTime stores it there
    created = sa.bindparam("now", type_=sa.DateTime(timezone=True))
    aliases = sa.bindparam("aliases", type_=sa.JSON)
    settings = sa.bindparam("settings", type_=sa.JSON)
    conn.execute(
        sa.text(
            "INSERT INTO queues (workspace_id, name, aliases, is_default, settings, created_at) "
            "SELECT id, :name, :aliases, :yes, :settings, :now FROM workspaces"
        ).bindparams(created, aliases, settings),
        {"name": DEFAULT_QUEUE, "aliases": [DEFAULT_QUEUE.lower()], "yes": True, "settings": {}, "now": now},
    )
    conn.execute(
        sa.text(
            "UPDATE handoffs SET queue_arrived_at = created_at, queue_id = "
            "(SELECT q.id FROM queues q WHERE q.workspace_id = handoffs.workspace_id AND q.is_default = :yes)"
        ),
        {"yes": True},
    )


def downgrade() -> None:
    op.drop_index("ix_handoffs_workspace_id_queue_id_status", table_name="handoffs")
    with op.batch_alter_table("handoffs") as batch:
        batch.drop_column("cancelled_at")
        batch.drop_column("cancelled_by")
        batch.drop_column("handovers")
        batch.drop_column("moves")
        batch.drop_column("queue_arrived_at")
        batch.drop_column("queue_id")
    op.drop_table("queues")
