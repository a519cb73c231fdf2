"""the leads' page: one-time sign-in links, sessions, measured manual handoffs

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

`dashboard_links`: a link the bot sent a lead privately, by the hash of its token (the token itself
is never stored), good once and for ten minutes. `dashboard_sessions`: a signed-in lead, by the hash
of the cookie's value, with the CSRF token of its forms, for eight hours. `baseline_measurements`:
how long a handoff without the bot took, as leads measured it (`/escalate baseline 25`): with five
or more, the hours-recovered estimate uses their median instead of MANUAL_BASELINE_MINUTES.

Expand only (new tables). Undoing it drops the measurements leads recorded and signs everyone out.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

serves_from = "0008"
reversible = True


def upgrade() -> None:
    op.create_table(
        "dashboard_links",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("workspace_id", sa.Integer, sa.ForeignKey("workspaces.id"), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "dashboard_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("workspace_id", sa.Integer, sa.ForeignKey("workspaces.id"), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_dashboard_sessions_expires_at", "dashboard_sessions", ["expires_at"])
    op.create_index("ix_dashboard_links_expires_at", "dashboard_links", ["expires_at"])
    op.create_table(
        "baseline_measurements",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("workspace_id", sa.Integer, sa.ForeignKey("workspaces.id"), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("minutes", sa.Float, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_baseline_measurements_workspace_id_created_at", "baseline_measurements", ["workspace_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_table("baseline_measurements")
    op.drop_table("dashboard_sessions")
    op.drop_table("dashboard_links")
